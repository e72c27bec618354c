"""Micro-benchmark: one batch-4 Net step, threads (argv 1) x optimizer variant (argv 2: default | foreach | fused)."""
# ruff: noqa: B007, B023  (closures are called inside the loop iteration that defines them)

import sys
import time

import torch
import torch.nn.functional as F

from classroom.models import Net

threads = int(sys.argv[1])
variant = sys.argv[2]
torch.set_num_threads(threads)
torch.manual_seed(0)
x = torch.randint(0, 255, (20000, 3, 32, 32), dtype=torch.uint8)
y = torch.randint(0, 10, (20000,))
xf = x.float() / 127.5 - 1
model = Net()
kw = {}
if variant == "foreach":
    kw = dict(foreach=True)
if variant == "fused":
    kw = dict(fused=True)
opt = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9, **kw)
order = torch.randperm(20000)
xs, ys = xf[order], y[order]


def run(n):
    t = time.perf_counter()
    losses = []
    for i in range(n):
        xb = xs[4 * i : 4 * i + 4]
        yb = ys[4 * i : 4 * i + 4]
        out = model(xb)
        loss = F.cross_entropy(out, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.detach())
    return (time.perf_counter() - t) / n * 1e6


run(200)
print(threads, variant, [round(run(1500)) for _ in range(3)], "us/step")
