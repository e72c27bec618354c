"""The training loop as a stream of events: batch end, epoch end, run end. No printing, no plotting."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from classroom import threads
from classroom.config import MAX_EPOCHS, TrainConfig
from classroom.data import Dataset, normalize, random_crop_flip
from classroom.evaluation import Evaluation, autocast, evaluate, sample_indices, sample_predictions
from classroom.models import build


@dataclass(frozen=True)
class BatchEnd:
    """Every log_interval steps: the mean loss since the last report and the speed."""

    epoch: int  # 1-based
    step: int  # 1-based step within the epoch
    steps_per_epoch: int
    global_step: int
    total_steps: int
    loss: float  # mean training cross-entropy over the interval (without label smoothing, like the test loss)
    lr: float
    images_per_sec: float
    train_seconds: float  # training time so far, pauses excluded
    eta_seconds: float  # time left: the steps to go at the recent pace (Pace), the test passes to go at the last one's
    kind: str = "batch"


@dataclass(frozen=True)
class EpochEnd:
    """After each epoch: training and test metrics."""

    epoch: int
    epochs: int
    train_loss: float  # cross-entropy without label smoothing, like test_loss, on the batches as they were seen
    train_accuracy: float  # on the (augmented) training batches as they were seen
    test_loss: float
    test_accuracy: float
    per_class_accuracy: dict[str, float]
    confusion: list[list[int]]
    seconds: float  # training time of this epoch
    train_seconds: float  # training time so far
    # The same few test images every epoch (evaluation.sample_indices), as sample_predictions gives them: indices into
    # the test set and predictions, no pixels. A list, as it reads back from metrics.jsonl.
    samples: list[dict] = field(default_factory=list)
    kind: str = "epoch"


@dataclass(frozen=True)
class RunEnd:
    """The last event: finished, stopped or failed, and why."""

    status: str  # finished | stopped | failed
    message: str
    train_seconds: float
    kind: str = "end"


Event = BatchEnd | EpochEnd | RunEnd


def event_dict(event: Event) -> dict:
    """JSON-ready form of an event."""
    return dataclasses.asdict(event)


class Control:
    """Stop and pause, set from any thread and checked by the loop every batch."""

    def __init__(self):
        self.stopped = threading.Event()
        self.running = threading.Event()
        self.running.set()

    def stop(self) -> None:
        self.stopped.set()
        self.running.set()  # wake a paused loop so it can see the stop

    def pause(self) -> None:
        if not self.stopped.is_set():
            self.running.clear()

    def resume(self) -> None:
        self.running.set()

    @property
    def paused(self) -> bool:
        return not self.running.is_set()


@dataclass
class TrainResult:
    """What a run leaves: the model, its final evaluation and the per-epoch history."""

    status: str
    message: str
    model: nn.Module
    device: str
    train_seconds: float
    evaluation: Evaluation | None = None
    history: list[EpochEnd] = field(default_factory=list)
    seed: int = 0  # config.seed, or the seed drawn for a run without one: with it the run can be repeated
    bf16: bool = False  # whether it computed in bf16: its evaluation is repeated the same way (evaluate_run)
    # A run with a time budget (config.minutes): how it was sized. {"minutes", "total_steps", "epochs",
    # "step_seconds", "eval_seconds", "seconds"}: the last plan and the budget's seconds used; empty without a budget.
    sized: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what the run chose that its config did not say (eager fallback)


class Pace:
    """Training steps per second over the last `window` seconds of training, for the time-left estimate.

    The mean over the whole run lags: a run slowed down by a busy class, or sped up when others end, kept its old
    estimate for minutes. A sliding window follows a change within `window` seconds and still smooths over a few
    reports. Times are given, not read from a clock, so a test can drive it."""

    def __init__(self, window: float = 5.0):
        self.window = window
        self._intervals: deque[tuple[int, float]] = deque()  # (steps, seconds) per report, oldest first
        self._steps, self._seconds = 0, 0.0

    def add(self, steps: int, seconds: float) -> None:
        """One report: `steps` steps took `seconds` seconds (pauses left out)."""
        self._intervals.append((steps, seconds))
        self._steps, self._seconds = self._steps + steps, self._seconds + seconds
        # Keep the newest intervals that cover the window: drop the oldest while the rest still cover it.
        while len(self._intervals) > 1 and self._seconds - self._intervals[0][1] >= self.window:
            old_steps, old_seconds = self._intervals.popleft()
            self._steps, self._seconds = self._steps - old_steps, self._seconds - old_seconds

    @property
    def rate(self) -> float:
        """Steps per second over the window (0 before the first report)."""
        return self._steps / self._seconds if self._seconds > 0 else 0.0

    def seconds_for(self, steps: int) -> float:
        """How long `steps` more steps take at the recent rate."""
        return steps / self.rate if steps > 0 and self.rate > 0 else 0.0


class Diverged(RuntimeError):
    """The loss became NaN or infinite."""


def resolve_device(name: str) -> torch.device:
    """The torch device for a config name; `auto` picks cuda, then mps, then cpu."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: cuda was asked for but this machine has no CUDA GPU; use cpu or auto")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"device: {name} does not exist; this machine has {torch.cuda.device_count()} GPU(s)")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("device: mps was asked for but this machine has no Apple GPU; use cpu or auto")
    return device


def use_bf16(precision: str, device: torch.device) -> bool:
    """Whether to autocast to bf16: asked for, or `auto` on a device that computes it fast."""
    if precision == "fp32":
        return False
    if precision == "bf16":
        return True
    if device.type == "cuda":
        # Native bf16 from Ampere (compute capability 8.0) on. is_bf16_supported() also counts GPUs that emulate it
        # (T4, V100: slower than fp32), and asks about the current GPU rather than this one.
        return torch.cuda.get_device_capability(device)[0] >= 8
    if device.type == "cpu":
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return False


def learning_rate(config: TrainConfig, step: int, total: int) -> float:
    """The rate of step (0-based) of total: constant, or onecycle (linear warm-up to the peak, then linear decay to 0).

    onecycle reaches the peak once, at the last of the `warmup` share of the steps (the first step when warmup is 0),
    and 0 at the last step."""
    if config.schedule == "constant":
        return config.lr
    warm = max(1, round(config.warmup * total))
    if step < warm:
        return config.lr * (step + 1) / warm
    return config.lr * max(0.0, (total - 1 - step) / max(1, total - warm))


def make_optimizer(config: TrainConfig, model: nn.Module, capturable: bool = False) -> torch.optim.Optimizer:
    """The optimizer the config names; weight decay skips biases and norm parameters."""
    decay = [p for p in model.parameters() if p.ndim > 1 and p.requires_grad]
    rest = [p for p in model.parameters() if p.ndim <= 1 and p.requires_grad]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    for group in groups:
        group["lr_scale"] = 1.0  # learning_rate() x this; a model may boost a group (FastCNN's BatchNorm biases)
    scales = getattr(model, "lr_scales", None)
    if scales:  # optional per-parameter multipliers a model declares: {parameter name: scale}
        named = {id(p): n for n, p in model.named_parameters()}
        for group in list(groups):
            boosted = [p for p in group["params"] if named[id(p)] in scales]
            if boosted:
                group["params"] = [p for p in group["params"] if named[id(p)] not in scales]
                for scale in sorted({scales[named[id(p)]] for p in boosted}):
                    same = [p for p in boosted if scales[named[id(p)]] == scale]
                    groups.append({"params": same, "weight_decay": group["weight_decay"], "lr_scale": scale})
        groups = [g for g in groups if g["params"]]
        for group in groups:
            group["lr"] = config.lr * group["lr_scale"]
    # One fused kernel for all parameters instead of a few small ops per parameter: at batch 4 the
    # optimizer step is a visible share of the step (measured in BENCHMARKS.md). CPU and CUDA have it.
    fast = {"fused": True} if next(model.parameters()).device.type in ("cpu", "cuda") else {}
    if config.optimizer in ("sgd", "nesterov"):
        nesterov = config.optimizer == "nesterov" and config.momentum > 0
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=nesterov, **fast)
    opt = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    if capturable:  # a CUDA graph replays Adam's step: its step count must live on the device (SGD keeps none)
        fast["capturable"] = True
    return opt(groups, lr=config.lr, betas=(config.momentum, 0.999), **fast)


def fresh_seed() -> int:
    """A seed for a run that names none, drawn from the OS: torch.seed() would reseed the generator other threads use."""
    return secrets.randbits(32)


def evaluation_limit(config: TrainConfig) -> int:
    """How many test images a run evaluates on: as many batches as it trains per epoch in a dry run, else all (0)."""
    return config.max_steps * 1000 if config.max_steps else 0


def evaluate_run(model: nn.Module, config: TrainConfig, dataset: Dataset, bf16: bool) -> Evaluation:
    """The test evaluation a run does: its normalisation, precision, memory layout, TTA and test images."""
    return evaluate(
        model, dataset.test_x, dataset.test_y, dataset.classes, config.mean, config.std,
        bf16=bf16, channels_last=config.channels_last, tta=config.tta, limit=evaluation_limit(config),
    )  # fmt: skip


def reevaluate(model: nn.Module, info: dict, dataset: Dataset) -> Evaluation:
    """A checkpoint's evaluation done again as its run did it, so the numbers are the ones the run recorded."""
    metrics = info.get("metrics")
    bf16 = metrics.get("bf16") if isinstance(metrics, dict) else None
    if not isinstance(bf16, bool):  # a checkpoint from before the precision was recorded: the config's rule here
        bf16 = use_bf16(info["config"].precision, next(model.parameters()).device)
    return evaluate_run(model, info["config"], dataset, bf16)


def clock() -> float:
    """The loop's clock: time.perf_counter, looked up at each call so that a test can fake it (tests/test_eta.py)."""
    return time.perf_counter()


PROBE_STEPS = 20  # a time-budgeted run measures its speed over at least this many steps ...
PROBE_SHARE = 0.03  # ... and at least this share of its budget before sizing the schedule,
PROBE_MAX_SHARE = 0.25  # unless its steps are so slow that this share is gone first: a short budget is still kept
REPLAN_EVERY = 0.02  # and it reports (and re-sizes) at least this often, as a share of its budget, whatever log_interval
REPLAN_UNTIL = 0.95  # re-sized at reports until this share of the steps: later changes would only jolt the decay's end


def plan_steps(
    budget: float, elapsed: float, done: int, step_seconds: float, eval_seconds: float, steps_per_epoch: int,
    evals_done: int, max_epochs: int = MAX_EPOCHS,
) -> int:  # fmt: skip
    """The most steps in all (at least `done`) whose remaining training and test passes fit in `budget` seconds.

    A test pass follows every epoch and the last, possibly partial, one; `elapsed` seconds are spent already."""
    best = done
    first = max(evals_done + 1, math.ceil(done / steps_per_epoch))  # the epoch in progress (or the next one)
    for epochs in range(first, max_epochs + 1):
        left = budget - elapsed - (epochs - evals_done) * eval_seconds
        total = min(epochs * steps_per_epoch, done + int(left / max(step_seconds, 1e-9)))
        if total <= (epochs - 1) * steps_per_epoch:  # not one step into this epoch: more epochs only cost more
            break
        best = max(best, total)
    return best


class CudaGraphs:
    """The few torch.cuda calls a graphed step makes; tests/test_cuda_graph.py swaps in a stub that runs on the CPU."""

    def available(self, device: torch.device) -> bool:
        return device.type == "cuda"

    @contextlib.contextmanager
    def side_stream(self, device: torch.device):
        """Warm-up work on a side stream, as capture requires (torch.cuda.graphs' whole-network example)."""
        stream = torch.cuda.Stream(device)
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(stream):
            yield
        torch.cuda.current_stream(device).wait_stream(stream)

    def capture(self, body: Callable[[], tuple]):
        """Record body's kernels (not run) into a graph; its outputs are static tensors each replay overwrites."""
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            outputs = body()
        return graph, outputs


cuda_graphs = CudaGraphs()


class GraphedStep:
    """The whole training step (forward, loss, backward, optimizer) captured once in a CUDA graph, then replayed.

    At batch 4 a step is a few hundred tiny kernels and the GPU waits on Python launching them; a replay launches
    them all at once. The first WARMUP steps run eagerly on a side stream (they are real steps: they create the
    momentum buffers and workspaces the capture must see), the next one is captured and every same-shaped batch after
    is copied into the static inputs and replayed. A batch of another shape (an epoch's short last one) is eager."""

    WARMUP = 3

    def __init__(self, forward, optimizer, device: torch.device, bf16: bool, label_smoothing: float, backend=None):
        self.forward, self.optimizer, self.device, self.bf16 = forward, optimizer, device, bf16
        self.label_smoothing = label_smoothing
        self.backend = backend or cuda_graphs
        self.warm, self.graph, self.static_x, self.static_y, self.outputs = 0, None, None, None, None

    def fits(self, xb: torch.Tensor) -> bool:
        return self.static_x is None or xb.shape == self.static_x.shape

    def _step_on(self, xb: torch.Tensor, yb: torch.Tensor):
        self.optimizer.zero_grad(set_to_none=True)  # Python-side only: under capture the grads come from the graph's pool
        # Autocast's cache of cast weights must be off under capture (torch.cuda.graphs docs); the numbers are the same.
        cast = torch.autocast(self.device.type, torch.bfloat16, cache_enabled=False) if self.bf16 else contextlib.nullcontext()
        with cast:
            logits = self.forward(xb)
        loss = F.cross_entropy(logits.float(), yb, label_smoothing=self.label_smoothing)
        loss.backward()
        self.optimizer.step()
        return logits, loss

    def step(self, xb: torch.Tensor, yb: torch.Tensor):
        """Train on one batch; (logits, loss) as tensors of their own, read later without a sync now."""
        if self.graph is None and self.warm < self.WARMUP:
            self.warm += 1
            with self.backend.side_stream(self.device):
                logits, loss = self._step_on(xb, yb)
            return logits.detach(), loss.detach()
        if self.graph is None:
            self.static_x, self.static_y = xb.clone(), yb.clone()
            self.graph, self.outputs = self.backend.capture(lambda: self._step_on(self.static_x, self.static_y))
        else:
            self.static_x.copy_(xb)
            self.static_y.copy_(yb)
        self.graph.replay()  # the capture ran nothing: its own batch is trained by this first replay
        logits, loss = self.outputs
        return logits.detach().clone(), loss.detach().clone()  # the next replay overwrites the static outputs


CHUNK_IMAGES = 4096  # images gathered, augmented and normalised in one go; batches are then views into the chunk


def epoch_shifts(config: TrainConfig, n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor | None:
    """An epoch's random-crop offsets, (dy, dx) for each place in its shuffled order, drawn in one go after the shuffle.

    Drawn per epoch, not per chunk of batches, so that the generated script (classroom.script), which draws them
    the same way, trains on the very same crops."""
    if not config.augment:
        return None
    return torch.randint(-config.translate, config.translate + 1, (n, 2), generator=generator).to(device)


def _chunk(config: TrainConfig, x, y, index, memory_format, shifts=None, flips=None):
    """Gather, augment and normalise many batches at once: at batch 4 per-step tensor ops cost more than the step."""
    xc, yc = x[index], y[index]
    if config.augment:
        flip = None if flips is None else flips[index]  # this epoch's side for each image (alternating flips)
        xc = random_crop_flip(xc, pad=config.translate, flip=flip, shift=shifts)  # shifts: these places' offsets
    return normalize(xc, config.mean, config.std).contiguous(memory_format=memory_format), yc


def train(
    config: TrainConfig,
    dataset: Dataset,
    on_event: Callable[[Event], None] | None = None,
    control: Control | None = None,
) -> TrainResult:
    """Train config.model on dataset, reporting through on_event; returns when finished, stopped or failed."""
    config.validate()
    with threads.using(config.threads):  # this run's thread count, then the process default (see classroom.threads)
        return _train(config, dataset, on_event or (lambda event: None), control or Control())


def _train(config: TrainConfig, dataset: Dataset, emit: Callable[[Event], None], control: Control) -> TrainResult:
    device = resolve_device(config.device)
    bf16 = use_bf16(config.precision, device)
    seed = config.seed if config.seed is not None else fresh_seed()
    # The run's own generators, nothing from torch's global one (lessons, timings and other runs reseed and draw
    # from it in other threads): one for the initial weights, one for shuffling and augmentation.
    init = torch.Generator().manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = build(config.model, num_classes=len(dataset.classes), generator=init).to(device)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    prepare = getattr(model, "prepare", None)
    if prepare is not None:  # data-dependent initialisation (FastCNN's patch-whitening layer)
        with torch.no_grad():
            sample = dataset.train_x[:: max(1, len(dataset.train_x) // 5000)][:5000]  # strided: every class, not the first
            prepare(normalize(sample.to(device), config.mean, config.std))
    notes: list[str] = []
    graphing = config.cuda_graph and cuda_graphs.available(device)
    if config.cuda_graph and not graphing:
        notes.append(f"cuda_graph: {device} is not a CUDA device, so every step ran eagerly")
    optimizer = make_optimizer(config, model, capturable=graphing)
    # The training steps may run a compiled copy (a one-time compilation cost that pays off on GPUs and long
    # runs); evaluation and the checkpoint use the plain module, so saved weights keep their names.
    forward = torch.compile(model) if config.compile else model
    graphed = GraphedStep(forward, optimizer, device, bf16, config.label_smoothing) if graphing else None
    if graphed is not None and config.schedule != "constant":
        for group in optimizer.param_groups:  # a replayed step reads its rate from device memory, set each step
            group["lr"] = torch.tensor(float(group["lr"]), device=device)

    train_x, train_y = dataset.train_x.to(device), dataset.train_y.to(device)  # resident: no loader, no copies
    n = len(train_x)
    # Alternating flips (airbench): each image starts mirrored or not at random, then flips every epoch, so
    # any two consecutive epochs show it both ways (with random flips half the images repeat their side).
    first_flip = (torch.rand(n, generator=g) < 0.5).to(device) if config.augment else None
    steps_per_epoch = math.ceil(n / config.batch_size)
    if n % config.batch_size == 1:
        steps_per_epoch -= 1  # a last batch of one image breaks BatchNorm; drop it
    if config.max_steps:
        steps_per_epoch = min(steps_per_epoch, config.max_steps)
    epochs = config.epochs
    total_steps = steps_per_epoch * epochs

    # A time budget (config.minutes) replaces the epochs: the first steps (the probe) train on a provisional plan,
    # then the total is sized from their speed and a timed test pass, and re-sized at reports as the pace changes.
    # The last epoch may be partial: it ends at total_steps, and its test pass ends the run.
    budget = config.minutes * 60
    sized = budget == 0  # True once the probe has sized the run (always, without a budget)
    budget_paused = 0.0  # pauses are not the budget's
    test_seconds = 0.0  # the last test pass's duration, for the time left; 0 until the first one
    tests_seconds = 0.0  # all test passes so far: a probe spanning an epoch end times its steps without them

    def run_eval() -> Evaluation:
        nonlocal test_seconds, tests_seconds
        t = clock()
        ev = evaluate_run(model, config, dataset, bf16)
        test_seconds = clock() - t
        tests_seconds += test_seconds
        return ev

    def estimate_eval() -> float:
        """A test pass's seconds from a timed pass over its first images, before any full one has run."""
        images = evaluation_limit(config) or len(dataset.test_x)
        part = min(images, 2000)
        t = clock()
        evaluate(model, dataset.test_x[:part], dataset.test_y[:part], dataset.classes, config.mean, config.std,
                 bf16=bf16, channels_last=config.channels_last, tta=config.tta)  # fmt: skip
        return (clock() - t) * images / max(part, 1)

    def resize(step_seconds: float, eval_seconds: float, evals_done: int, tolerance: float = 0.0) -> None:
        """Fit total_steps (and the epochs it spans) to what is left of the budget, unless within tolerance of it."""
        nonlocal total_steps, epochs
        elapsed = clock() - budget_start - budget_paused
        total = max(1, plan_steps(budget, elapsed, global_step, step_seconds, eval_seconds, steps_per_epoch, evals_done))
        if result.sized and abs(total - total_steps) <= tolerance * total_steps:
            return
        total_steps, epochs = total, math.ceil(total / steps_per_epoch)
        result.sized = {
            "minutes": config.minutes, "total_steps": total_steps, "epochs": round(total_steps / steps_per_epoch, 3),
            "step_seconds": step_seconds, "eval_seconds": eval_seconds,
        }  # fmt: skip

    # The images whose predictions every epoch reports: fixed for the run, chosen from the labels the evaluation uses.
    samples = sample_indices(dataset.test_y[: evaluation_limit(config) or None])
    pace = Pace()
    result = TrainResult("finished", "", model, str(device), 0.0, seed=seed, bf16=bf16, notes=notes)
    global_step = 0
    estimated_eval = 0.0  # a budgeted run's test-pass estimate until one has run
    model.train()
    budget_start = clock()
    if not sized:  # at least two steps, so that the probe can time one after the first
        total_steps = max(total_steps, 2)
        epochs = math.ceil(total_steps / steps_per_epoch)
    probe_start = probe_off = 0.0  # when the probe's timing began, and the test passes and pauses to take off it
    try:
        epoch = 0
        while epoch < epochs:
            epoch += 1
            order = torch.randperm(n, generator=g).to(device)
            shifts = epoch_shifts(config, n, g, device)
            if hasattr(model, "start_epoch"):  # a model may change what trains per epoch (FastCNN's whitening bias)
                model.start_epoch(epoch, epochs)
            flips = first_flip ^ (epoch % 2 == 0) if config.augment else None
            chunk_steps = max(1, CHUNK_IMAGES // config.batch_size)
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.long)
            seen, interval_steps, interval_loss = 0, 0, 0.0
            # Per-step results stay tensors in lists, reduced once per interval: no per-step reductions or syncs.
            step_losses, step_logits, step_labels = [], [], []
            epoch_start = interval_start = clock()
            paused_seconds = interval_paused = 0.0
            step = 0
            while step < min(steps_per_epoch, total_steps - (epoch - 1) * steps_per_epoch):  # a budget's last may be short
                step += 1
                if control.paused:
                    t = clock()
                    control.running.wait()
                    interval_paused += clock() - t
                    budget_paused += clock() - t
                if control.stopped.is_set():
                    raise _Stop
                j = (step - 1) % chunk_steps
                if j == 0:
                    start = (step - 1) * config.batch_size
                    index = order[start : start + chunk_steps * config.batch_size]
                    shift = None if shifts is None else shifts[start : start + len(index)]
                    x_chunk, y_chunk = _chunk(config, train_x, train_y, index, memory_format, shift, flips)
                xb = x_chunk[j * config.batch_size : (j + 1) * config.batch_size]
                yb = y_chunk[j * config.batch_size : (j + 1) * config.batch_size]
                if config.schedule != "constant":
                    lr = learning_rate(config, global_step, total_steps)
                    for group in optimizer.param_groups:
                        if isinstance(group["lr"], torch.Tensor):
                            group["lr"].fill_(lr * group.get("lr_scale", 1.0))
                        else:
                            group["lr"] = lr * group.get("lr_scale", 1.0)
                logits = None
                if graphed is not None and graphed.fits(xb):
                    try:
                        logits, loss = graphed.step(xb, yb)
                    except torch.OutOfMemoryError:
                        raise
                    except Exception as e:  # capture unsupported here (an op, a driver): the eager step from now on
                        if graphed.graph is not None:
                            raise
                        graphed = None
                        notes.append(f"cuda_graph: capture failed ({type(e).__name__}: {e}); trained eagerly")
                if logits is None:
                    with autocast(device, bf16):
                        logits = forward(xb)
                    loss = F.cross_entropy(logits.float(), yb, label_smoothing=config.label_smoothing)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                global_step += 1
                seen += len(yb)
                step_losses.append(loss.detach())
                step_logits.append(logits.detach())
                step_labels.append(yb)
                interval_steps += 1
                if not sized:
                    if global_step == 1:  # the speed is timed from here: the first step pays one-time costs
                        probe_start, probe_off = clock(), tests_seconds + budget_paused
                    else:
                        spent = clock() - budget_start - budget_paused
                        done = global_step - 1
                        probed = global_step >= PROBE_STEPS and spent >= PROBE_SHARE * budget
                        if probed or spent >= PROBE_MAX_SHARE * budget:
                            if device.type == "cuda":
                                torch.cuda.synchronize(device)
                            step_seconds = (clock() - probe_start - (tests_seconds + budget_paused - probe_off)) / done
                            estimated_eval = estimate_eval()
                            resize(step_seconds, estimated_eval, epoch - 1)
                            sized = True
                        else:  # provisional, for the probe's own learning rates: the steps that fit at this pace
                            step_seconds = max(clock() - probe_start - (tests_seconds + budget_paused - probe_off), 1e-9) / done
                            fit = global_step + int(max(budget - spent, 0.0) / step_seconds)
                            total_steps = max(global_step + 1, min(fit, MAX_EPOCHS * steps_per_epoch))
                            epochs = math.ceil(total_steps / steps_per_epoch)
                epoch_end = min(steps_per_epoch, total_steps - (epoch - 1) * steps_per_epoch)
                report = step % config.log_interval == 0 or step == epoch_end
                if budget and sized and not report:  # a busy machine's pace changes: follow it often enough to end on time
                    report = clock() - interval_start - interval_paused >= REPLAN_EVERY * budget
                if report or len(step_logits) == 256:  # bound the lists when log_interval is long
                    logits_seen, labels_seen = torch.cat(step_logits), torch.cat(step_labels)
                    if config.label_smoothing:
                        # Reported without the smoothing, as the test loss is: the two compare, and a smoothed loss
                        # never nears 0 however well the model fits. Computed here, in bulk, not per step.
                        plain = F.cross_entropy(logits_seen.float(), labels_seen, reduction="none")
                        losses = torch.stack([part.mean() for part in plain.split([len(t) for t in step_labels])])
                    else:
                        losses = torch.stack(step_losses)
                    sizes = torch.tensor([len(t) for t in step_labels], device=device, dtype=losses.dtype)
                    loss_sum += (losses * sizes).sum()
                    interval_loss = interval_loss + losses.sum()
                    correct += (logits_seen.argmax(1) == labels_seen).sum()
                    step_losses, step_logits, step_labels = [], [], []
                if report:
                    mean_loss = (interval_loss / interval_steps).item()  # the one sync per interval
                    if not math.isfinite(mean_loss):
                        raise Diverged(f"epoch {epoch}, step {step}")
                    now = clock()
                    paused_seconds += interval_paused
                    elapsed = result.train_seconds + now - epoch_start - paused_seconds
                    interval = max(now - interval_start - interval_paused, 1e-9)
                    pace.add(interval_steps, interval)
                    # Re-sized only here, so that the BatchEnd just below carries every change of the total (the
                    # last one the final total), and only on a real change: each one bends the schedule a little.
                    if sized and budget and global_step < REPLAN_UNTIL * total_steps and step < epoch_end:
                        resize(1 / pace.rate, test_seconds or estimated_eval, epoch - 1, tolerance=0.005)
                    tests_left = epochs - epoch + 1  # this epoch's test pass is still to come
                    eta = pace.seconds_for(total_steps - global_step) + tests_left * (test_seconds or estimated_eval)
                    emit(BatchEnd(
                        epoch, step, steps_per_epoch, global_step, total_steps, mean_loss,
                        float(optimizer.param_groups[0]["lr"]), interval_steps * config.batch_size / interval, elapsed,
                        eta,
                    ))  # fmt: skip
                    interval_loss, interval_steps, interval_start, interval_paused = 0.0, 0, now, 0.0
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds = clock() - epoch_start - paused_seconds
            result.train_seconds += seconds
            ev = run_eval()
            result.evaluation = ev
            end = EpochEnd(
                epoch, max(epochs, epoch), loss_sum.item() / max(seen, 1), correct.item() / max(seen, 1),
                ev.loss, ev.accuracy, ev.per_class_accuracy, ev.confusion.tolist(), seconds, result.train_seconds,
                sample_predictions(ev, samples),
            )  # fmt: skip
            result.history.append(end)
            emit(end)
    except _Stop:
        result.status = "stopped"
        result.message = f"stopped by request after {global_step} of {total_steps} steps"
        result.evaluation = run_eval() if global_step else result.evaluation
    except Diverged as e:
        result.status = "failed"
        result.message = (
            f"the loss became NaN or infinite at {e}: the learning rate ({config.lr:g}) is too high "
            f"for this model and batch size; try {config.lr / 10:g}"
        )
    except torch.OutOfMemoryError:
        result.status = "failed"
        result.message = f"out of memory on {device}: lower the batch size ({config.batch_size}) or use a smaller model"
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if budget:
        result.sized["seconds"] = clock() - budget_start - budget_paused  # training and test passes, pauses left out
    if result.status == "finished" and budget:
        s = result.sized
        result.message = (
            f"finished: sized to {s.get('epochs', epochs):g} epochs ({global_step} steps) for a {config.minutes:g}-minute "
            f"budget, used {s['seconds']:.1f} s"
        )
    if result.status == "finished" and notes:
        result.message = "; ".join([result.message or "finished", *notes])
    emit(RunEnd(result.status, result.message or "finished", result.train_seconds))
    return result


class _Stop(Exception):
    """Raised inside the loop when Control.stop was called."""
