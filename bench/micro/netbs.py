"""Micro-benchmark: the tutorial Net at batch 32-256, 1 vs 2 threads, NCHW vs channels_last (wall and per CPU-second)."""
# ruff: noqa: B007, B023  (closures are called inside the loop iteration that defines them)

import time

import torch
import torch.nn.functional as F

from classroom.models import Net

for th in (1, 2):
    torch.set_num_threads(th)
    for bs in (32, 64, 128, 256):
        for cl in (False, True):
            m = Net().to(memory_format=torch.channels_last if cl else torch.contiguous_format)
            opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, nesterov=True, fused=True)
            x = torch.randn(bs, 3, 32, 32).contiguous(memory_format=torch.channels_last if cl else torch.contiguous_format)
            y = torch.randint(0, 10, (bs,))

            def step():
                loss = F.cross_entropy(m(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()

            for _ in range(3):
                step()
            n = max(5, 3000 // bs)
            t = time.perf_counter()
            c = time.process_time()
            for _ in range(n):
                step()
            w = time.perf_counter() - t
            c = time.process_time() - c
            print(f"threads {th} bs {bs} cl {cl}: {n * bs / w:.0f} img/s wall, {n * bs / c:.0f} img/CPU-s", flush=True)
