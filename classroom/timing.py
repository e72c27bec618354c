"""Live timing of one training step (forward + backward) per batch size and device; reference GPU figures beside it."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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


# --- reference figures: GPU timings measured elsewhere, read from BENCHMARKS.md -----------------------------------

BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
START, END = "<!-- reference-figures: start -->", "<!-- reference-figures: end -->"
KEYS = ("machine", "torch", "measured", "data")  # the labelled lines above the table
COLUMNS = ("run", "model", "batch size", "epochs", "seconds", "seconds for", "test accuracy (%)")
PER = {"one epoch": True, "the whole run": False}  # what a "seconds" figure counts
EPOCH_IMAGES = 50_000  # CIFAR-10's training images: one epoch of the reference runs


class ReferenceFiguresError(ValueError):
    """BENCHMARKS.md's reference-figures section is missing or malformed; the message says where."""


@dataclass(frozen=True)
class ReferenceRun:
    """One row of the reference table: a run measured on the reference machine."""

    run: str  # what was trained, as BENCHMARKS.md says it (Markdown code spans kept)
    model: str  # net | fast-cnn ...
    batch_size: int
    epochs: int
    seconds: tuple[float, float]  # lowest and highest figure given (the same number twice for one figure)
    seconds_text: str  # the figure as BENCHMARKS.md writes it: "2.0", "20.2-20.5"
    per_epoch: bool  # True: seconds for one epoch; False: for the whole run (all its epochs)
    accuracy: float | None  # test accuracy in percent, None when none was given

    @property
    def counted_epochs(self) -> int:
        """How many epochs the seconds figure counts."""
        return 1 if self.per_epoch else self.epochs


@dataclass(frozen=True)
class ReferenceFigures:
    """The reference machine's labelled lines and its runs."""

    machine: str
    torch: str
    measured: str
    data: str
    runs: tuple[ReferenceRun, ...]


def reference_figures(path: str | os.PathLike = BENCHMARKS) -> ReferenceFigures:
    """Parse the section between the reference-figures markers of BENCHMARKS.md; ReferenceFiguresError says what is wrong."""
    name = Path(path).name
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ReferenceFiguresError(f"{name} cannot be read ({e.strerror or e})") from None
    if START not in text or END not in text.split(START, 1)[1]:
        raise ReferenceFiguresError(f"{name} has no reference-figures section (the lines between {START} and {END})")
    lines = [line.strip() for line in text.split(START, 1)[1].split(END, 1)[0].splitlines() if line.strip()]
    labels = dict(line[2:].split(": ", 1) for line in lines if line.startswith("- ") and ": " in line)
    missing = [key for key in KEYS if not labels.get(key)]
    if missing:
        raise ReferenceFiguresError(f"{name}: the reference-figures section has no '- {missing[0]}: ...' line")
    table = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines if line.startswith("|")]
    if len(table) < 3 or tuple(table[0]) != COLUMNS or not all(set(cell) <= set("-:") and cell for cell in table[1]):
        raise ReferenceFiguresError(f"{name}: the reference-figures table needs the columns {' | '.join(COLUMNS)} and a row")
    runs = tuple(_reference_run(cells, name, number) for number, cells in enumerate(table[2:], 1))
    return ReferenceFigures(*(labels[key] for key in KEYS), runs)


def _reference_run(cells: list[str], name: str, number: int) -> ReferenceRun:
    """One table row, every number checked."""
    where = f"{name}: reference-figures row {number}"
    if len(cells) != len(COLUMNS):
        raise ReferenceFiguresError(f"{where} has {len(cells)} cells, not {len(COLUMNS)}")
    row = dict(zip(COLUMNS, cells))
    try:
        low, _, high = row["seconds"].partition("-")
        seconds = (float(low), float(high or low))
        accuracy = float(row["test accuracy (%)"]) if row["test accuracy (%)"] else None
        batch_size, epochs = int(row["batch size"]), int(row["epochs"])
    except ValueError as e:
        raise ReferenceFiguresError(f"{where}: {e}") from None
    if row["seconds for"] not in PER:
        raise ReferenceFiguresError(f"{where}: 'seconds for' must be one of {', '.join(PER)}, not {row['seconds for']!r}")
    if not (0 < seconds[0] <= seconds[1] and batch_size > 0 and epochs > 0):
        raise ReferenceFiguresError(f"{where}: seconds, batch size and epochs must be above 0 (seconds low-high)")
    return ReferenceRun(row["run"], row["model"], batch_size, epochs, seconds, row["seconds"], PER[row["seconds for"]], accuracy)


def live_estimate(rows: list[Timing], run: ReferenceRun, model: str = "Net", device: str = "cpu") -> float | None:
    """Seconds the reference run's figure would take here at the live forward + backward rate; None if not timed live."""
    # From below: an epoch is EPOCH_IMAGES images at the rate timed for the run's batch size, while a real epoch also
    # steps the optimizer and gathers its batches.
    if run.model != "net":  # only the tutorial's Net (and WideNet) are timed live
        return None
    rate = next((r.images_per_second for r in rows if (r.model, r.device, r.batch_size) == (model, device, run.batch_size)), None)
    if rate is None:
        return None
    return EPOCH_IMAGES / rate * run.counted_epochs
