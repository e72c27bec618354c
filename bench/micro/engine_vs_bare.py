"""Micro-benchmark: the engine's tutorial preset vs a minimal hand-written batch-4 loop, 3000 steps, alternating."""
# ruff: noqa: B007, B023  (closures are called inside the loop iteration that defines them)

import time

import torch
import torch.nn.functional as F

from classroom import data
from classroom.config import preset
from classroom.models import Net
from classroom.training import train

ds = data.load("folder:/work/shared/data/cifar10-jpg", "/tmp/bench-data")
torch.set_num_threads(1)
xf = ds.train_x[:12000].float() / 127.5 - 1
y = ds.train_y[:12000]


def bare():
    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    t = time.perf_counter()
    for i in range(3000):
        out = model(xf[4 * i : 4 * i + 4])
        loss = F.cross_entropy(out, y[4 * i : 4 * i + 4])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - t


for rep in range(2):
    print(
        "bare",
        round(bare(), 2),
        "engine",
        round(train(preset("tutorial", data=ds.name, max_steps=3000, epochs=1, threads=1), ds).train_seconds, 2),
    )
