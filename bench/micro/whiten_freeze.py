"""Micro-benchmark: FastCNN training steps with the whitening bias trained vs frozen, interleaved, batch 256, bf16."""

import time

from profile_fastcnn import BATCH, stepper

from classroom.models import FastCNN


def model(frozen: bool) -> FastCNN:
    m = FastCNN()
    m.whiten.bias.requires_grad_(not frozen)
    return m


steps = {False: stepper(model(False)), True: stepper(model(True))}
times = {False: [], True: []}
for step in list(steps.values()) * 2:
    step()  # warm-up
for _ in range(5):  # interleaved, so drifts in machine speed hit both alike
    for frozen, step in steps.items():
        t = time.perf_counter()
        step()
        times[frozen].append(time.perf_counter() - t)
for frozen, ts in times.items():
    print("frozen " if frozen else "trained", f"{BATCH / sorted(ts)[2]:.0f} img/s (median of 5)")
