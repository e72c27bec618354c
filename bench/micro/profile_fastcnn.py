"""Micro-benchmark: where a FastCNN training step spends its time (torch.profiler, batch 256, bf16, channels_last)."""

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from classroom.models import FastCNN

BATCH = 256


def stepper(model: FastCNN, seed: int = 0):
    """A function that runs one bf16 training step of model on a fixed random batch (as the engine does)."""
    torch.manual_seed(seed)
    x = torch.randn(BATCH, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (BATCH,))
    model = model.to(memory_format=torch.channels_last)
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


if __name__ == "__main__":
    step = stepper(FastCNN())
    for _ in range(3):
        step()  # warm-up
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(4):
            step()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
    print(prof.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total", row_limit=16))
