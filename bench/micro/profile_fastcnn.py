"""Micro-benchmark: where a FastCNN training step spends its time (torch.profiler, batch 256, bf16, channels_last)."""

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from classroom.models import FastCNN

torch.manual_seed(0)
x = torch.randn(256, 3, 32, 32).contiguous(memory_format=torch.channels_last)
y = torch.randint(0, 10, (256,))
model = FastCNN().to(memory_format=torch.channels_last)
opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9, nesterov=True, fused=True)


def step():
    with torch.autocast("cpu", torch.bfloat16):
        out = model(x)
    loss = F.cross_entropy(out.float(), y)
    opt.zero_grad()
    loss.backward()
    opt.step()


for _ in range(3):
    step()  # warm-up
with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
    for _ in range(4):
        step()
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
print(prof.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total", row_limit=16))
