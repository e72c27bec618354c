"""Live timing of one training step (forward + backward) of a model, per batch size, on each device this machine has."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from classroom import threads as cpu_threads
from classroom.models import Net, WideNet, initialise, parameter_count


@dataclass(frozen=True)
class Timing:
    """One measurement: seconds per forward + backward of a batch, the best of a few repeats."""

    model: str
    device: str
    batch_size: int
    seconds: float
    parameters: int

    @property
    def images_per_second(self) -> float:
        return self.batch_size / self.seconds


def devices() -> list[str]:
    """Every device kind this machine can run on: cpu, and cuda / mps when present."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found.append("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        found.append("mps")
    return found


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    elif device == "mps":
        torch.mps.synchronize()


CPU_THREADS = 1  # a class shares the server's cores: one core per student is the fair share, and it keeps timings steady


def time_step(
    model: nn.Module,
    batch_size: int,
    device: str = "cpu",
    repeats: int = 5,
    budget: float = 0.5,
    threads: int | None = CPU_THREADS,
) -> float:
    """Seconds of forward + loss + backward on a random batch, the fastest of a few repeats within budget seconds."""
    # The fastest repeat is the least disturbed by other work. On the CPU, `threads` threads (None: the process
    # default): several threads spin-waiting for cores that other work holds make a busy machine many times slower,
    # which would measure the crowd rather than the model. Afterwards the process default, never "what it was".
    with cpu_threads.using(threads if device == "cpu" else None):
        return _time_step(model, batch_size, device, repeats, budget)


def _time_step(model: nn.Module, batch_size: int, device: str, repeats: int, budget: float) -> float:
    model = model.to(device).train()
    g = torch.Generator().manual_seed(0)  # not torch's global generator: a lesson in another thread may be using it
    x = torch.randn(batch_size, 3, 32, 32, generator=g).to(device)
    y = torch.randint(0, 10, (batch_size,), generator=g).to(device)

    def step() -> None:
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()

    step()  # warm-up: the first call pays for allocation and kernel selection
    _sync(device)
    times, spent = [], 0.0
    while len(times) < repeats and (spent < budget or len(times) < 2):
        start = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - start)
        spent += times[-1]
    return min(times)


MODELS: dict[str, Callable[[], nn.Module]] = {"Net": Net, "WideNet": WideNet}


def measure(
    models: dict[str, Callable[[], nn.Module]] | None = None,
    batch_sizes: tuple[int, ...] = (1, 16, 128),
    on: list[str] | None = None,
    budget: float = 0.3,
) -> list[Timing]:
    """Time every model at every batch size on every device (all this machine has, by default)."""
    rows = []
    for name, factory in (models or MODELS).items():
        with torch.device("meta"):  # the same weights every time, without reseeding the generator lessons use
            model = factory()
        model = initialise(model.to_empty(device="cpu"), torch.Generator().manual_seed(0))
        count = parameter_count(model)
        for device in on or devices():
            for batch_size in batch_sizes:
                rows.append(Timing(name, device, batch_size, time_step(model, batch_size, device, budget=budget), count))
        model.to("cpu")
    return rows


def label(device: str) -> str:
    """How a device is named beside its timings (the CPU with the thread count it was timed with)."""
    return f"cpu ({CPU_THREADS} thread{'s' if CPU_THREADS > 1 else ''})" if device == "cpu" else device


def speedup(rows: list[Timing], model: str, batch_size: int, device: str, baseline: str = "cpu") -> float | None:
    """How many times faster device is than baseline for one model and batch size, or None if either is missing."""
    pick = {(r.model, r.device, r.batch_size): r.seconds for r in rows}
    fast, slow = pick.get((model, device, batch_size)), pick.get((model, baseline, batch_size))
    return slow / fast if fast and slow else None
