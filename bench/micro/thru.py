"""Micro-benchmark: FastCNN training throughput, widths x {fp32, bf16 autocast} x {NCHW, channels_last}, batch 256."""
# ruff: noqa: B007, B023  (closures are called inside the loop iteration that defines them)

import time

import torch
import torch.nn.functional as F

from classroom.models import FastCNN

torch.manual_seed(0)
bs = 256
x = torch.randn(bs, 3, 32, 32)
y = torch.randint(0, 10, (bs,))
for widths in [(32, 64, 128), (48, 96, 192), (64, 128, 256)]:
    for bf16 in (False, True):
        for cl in (False, True):
            m = FastCNN(widths)
            mf = torch.channels_last if cl else torch.contiguous_format
            m = m.to(memory_format=mf)
            xb = x.contiguous(memory_format=mf)
            opt = torch.optim.SGD(
                [p for p in m.parameters() if p.requires_grad], lr=0.01, momentum=0.9, nesterov=True, fused=True
            )

            def step():
                with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                    out = m(xb)
                loss = F.cross_entropy(out.float(), y)
                opt.zero_grad()
                loss.backward()
                opt.step()

            step()
            step()
            t = time.perf_counter()
            c = time.process_time()
            for _ in range(4):
                step()
            w = time.perf_counter() - t
            c = time.process_time() - c
            print(
                widths,
                "bf16" if bf16 else "fp32",
                "cl" if cl else "nchw",
                f"{4 * bs / w:.0f} img/s wall, cpu/wall {c / w:.2f}",
                flush=True,
            )
