"""Micro-benchmark: FastCNN training steps with the whitening bias trained vs frozen, interleaved, batch 256, bf16."""

import time

import torch
import torch.nn.functional as F

from classroom.models import FastCNN

torch.manual_seed(0)
bs = 256
x = torch.randn(bs, 3, 32, 32).contiguous(memory_format=torch.channels_last)
y = torch.randint(0, 10, (bs,))


def stepper(frozen: bool):
    """One training step of a fresh FastCNN whose whitening bias is frozen or not."""
    model = FastCNN().to(memory_format=torch.channels_last)
    model.whiten.bias.requires_grad_(not frozen)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, nesterov=True, fused=True)

    def step():
        with torch.autocast("cpu", torch.bfloat16):
            out = model(x)
        loss = F.cross_entropy(out.float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


steps = {False: stepper(False), True: stepper(True)}
times = {False: [], True: []}
for step in list(steps.values()) * 2:
    step()  # warm-up
for _ in range(5):  # interleaved, so drifts in machine speed hit both alike
    for frozen, step in steps.items():
        t = time.perf_counter()
        step()
        times[frozen].append(time.perf_counter() - t)
for frozen, ts in times.items():
    print("frozen " if frozen else "trained", f"{bs / sorted(ts)[2]:.0f} img/s (median of 5)")
