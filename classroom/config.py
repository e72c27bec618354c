"""Training configuration: one frozen dataclass, every field with its unit, and named presets."""

from __future__ import annotations

import dataclasses
import math
import unicodedata
from dataclasses import dataclass

MODELS = ("net", "wide-net", "fast-cnn")
OPTIMIZERS = ("sgd", "nesterov", "adam", "adamw")
SCHEDULES = ("constant", "onecycle")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16")
MAX_EPOCHS = 200
MAX_BATCH_SIZE = 4096
MAX_LR = 10.0
MAX_MINUTES = 24 * 60.0  # a time budget of at most a day: longer runs belong to a batch system, not a classroom
# Unicode categories a run name may not hold: control (Cc: line breaks, tabs, escapes), format (Cf: bidi overrides
# and isolates, zero-width characters), surrogates (Cs), line and paragraph separators (Zl, Zp).
HIDDEN_CATEGORIES = ("Cc", "Cf", "Cs", "Zl", "Zp")

# The tutorial's transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)): pixels land in [-1, 1].
TUTORIAL_MEAN = (0.5, 0.5, 0.5)
TUTORIAL_STD = (0.5, 0.5, 0.5)


class ConfigError(ValueError):
    """A configuration value that cannot work; the message names the field."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run needs; the defaults are the PyTorch CIFAR-10 tutorial."""

    model: str = "net"  # registry name in classroom.models
    epochs: int = 2  # full passes over the training set
    batch_size: int = 4  # images per optimizer step
    lr: float = 0.001  # peak learning rate
    momentum: float = 0.9  # SGD momentum (beta1 for Adam)
    optimizer: str = "sgd"  # sgd | nesterov | adam | adamw
    weight_decay: float = 0.0  # L2 penalty per step
    schedule: str = "constant"  # constant | onecycle (linear warm-up, then linear decay to 0)
    warmup: float = 0.0  # fraction of all steps spent warming up (onecycle only)
    label_smoothing: float = 0.0  # probability mass spread over the other classes
    augment: bool = False  # random crop (pad `translate`) + horizontal flip, on the device
    translate: int = 4  # pixels of padding for the random crop when augmenting (0: flips only)
    mean: tuple[float, float, float] = TUTORIAL_MEAN  # per-channel normalisation
    std: tuple[float, float, float] = TUTORIAL_STD
    seed: int | None = 0  # None: a fresh random seed (the tutorial sets none)
    device: str = "auto"  # auto | cpu | cuda | mps | cuda:N
    precision: str = "fp32"  # fp32 | bf16 | auto (bf16 autocast where the device does it fast)
    channels_last: bool = False  # NHWC memory layout, faster convolutions on many CPUs and GPUs
    threads: int = 0  # CPU threads for torch during the run; 0 keeps torch's default
    compile: bool = False  # torch.compile the model: a one-time compile (tens of seconds), then faster steps
    tta: bool = False  # test-time augmentation: average the prediction with its mirror image
    data: str = "shapes"  # cifar10 | folder:PATH | shapes
    data_dir: str = "data"  # where downloads and decoded caches live
    log_interval: int = 2000  # steps between loss reports (the tutorial prints every 2000)
    max_steps: int = 0  # stop each epoch after this many steps and evaluate on as many batches; 0 = all (--dry-run)
    minutes: float = 0.0  # time budget for training + test passes: the schedule is sized to fill it; 0 = use epochs
    cuda_graph: bool = False  # on CUDA, capture the whole step in a CUDA graph and replay it (eager elsewhere)
    name: str = ""  # free label shown in the run list

    def validate(self) -> TrainConfig:
        """Return self, or raise ConfigError naming the first impossible field."""
        if self.model not in MODELS:
            raise ConfigError(f"model: unknown model {self.model!r}; choose one of {', '.join(MODELS)}")
        _check_int("epochs", self.epochs, 1, MAX_EPOCHS)
        _check_int("batch_size", self.batch_size, 1, MAX_BATCH_SIZE)
        _check_float("lr", self.lr, 0.0, MAX_LR, open_low=True)
        _check_float("momentum", self.momentum, 0.0, 0.9999)
        _check_float("weight_decay", self.weight_decay, 0.0, 1.0)
        _check_float("warmup", self.warmup, 0.0, 1.0)
        _check_float("label_smoothing", self.label_smoothing, 0.0, 0.5)
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer: unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule: unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision: unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")
        base = self.device.split(":")[0]
        if base not in DEVICES or (":" in self.device and not self.device.split(":", 1)[1].isdigit()):
            raise ConfigError(f"device: unknown device {self.device!r}; choose one of {', '.join(DEVICES)}")
        if not (self.data in ("cifar10", "shapes") or (self.data.startswith("folder:") and len(self.data) > 7)):
            raise ConfigError(f"data: unknown data source {self.data!r}; use cifar10, shapes or folder:PATH")
        if self.seed is not None:
            _check_int("seed", self.seed, 0, 2**32 - 1)
        _check_int("log_interval", self.log_interval, 1, 10**7)
        _check_int("max_steps", self.max_steps, 0, 10**7)
        _check_int("threads", self.threads, 0, 1024)
        _check_int("translate", self.translate, 0, 16)
        _check_float("minutes", self.minutes, 0.0, MAX_MINUTES)
        if not isinstance(self.cuda_graph, bool):
            raise ConfigError(f"cuda_graph: must be true or false, got {self.cuda_graph!r}")
        for name in ("mean", "std"):
            values = getattr(self, name)
            if len(values) != 3 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
                raise ConfigError(f"{name}: needs three finite numbers, got {values!r}")
        if min(self.std) <= 0:
            raise ConfigError(f"std: every entry must be above 0, got {self.std!r}")
        _check_name(self.name)
        return self

    def replace(self, **changes) -> TrainConfig:
        """A copy with some fields changed, validated."""
        return dataclasses.replace(self, **changes).validate()

    def to_dict(self) -> dict:
        """Plain JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """Build from a dict (config.json); unknown keys are an error naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"{unknown[0]}: not a TrainConfig field")
        values = dict(values)
        for key in ("mean", "std"):
            if key in values and isinstance(values[key], list):
                values[key] = tuple(values[key])
        return cls(**values).validate()


def _check_int(name: str, value, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name}: must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"{name}: must be between {low} and {high}, got {value}")


def _check_name(name) -> None:
    """A run name is shown to the whole class: one line of visible text, no control or invisible format characters."""
    if not isinstance(name, str):
        raise ConfigError(f"name: must be text, got {name!r}")
    hidden = [c for c in name if unicodedata.category(c) in HIDDEN_CATEGORIES]
    if hidden:
        raise ConfigError(
            f"name: no control characters, line breaks, tabs or invisible format characters such as bidi overrides "
            f"and zero-width spaces (found U+{ord(hidden[0]):04X})"
        )


def _check_float(name: str, value, low: float, high: float, open_low: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name}: must be a finite number, got {value!r}")
    if value < low or (open_low and value == low) or value > high:
        bound = f"above {low}" if open_low else f"at least {low}"
        raise ConfigError(f"{name}: must be {bound} and at most {high}, got {value}")


# Presets. `tutorial` is the tutorial exactly; the others are the fastest settings measured
# (see BENCHMARKS.md for the runs behind them).
PRESETS: dict[str, TrainConfig] = {
    # The tutorial exactly (Net, SGD 0.001/0.9, batch 4, 2 epochs, Normalize 0.5, shuffled). One CPU thread:
    # at batch 4 each op is tiny and a second OpenMP thread only adds hand-off cost (2.5x slower measured on
    # a busy 2-core machine, BENCHMARKS.md); it changes nothing but speed.
    "tutorial": TrainConfig(threads=1),
    # The same Net, trained the fast way: batch 128 with a linear warm-up / decay, Adam and channels_last. Adam
    # rather than Nesterov SGD (lr 0.1): SGD at that rate is on the edge of stability for this Net, whose loss
    # jumps back to chance as it leaves its first plateau; on the shapes set (a fifth of CIFAR-10's steps) it ended
    # anywhere between 17 % and 77 % by the seed (0-4), and on CIFAR-10 between 53.7 % and 58.6 % (seeds 0-2). Adam
    # at 0.008: 84-88 % on shapes, 57.1-59.0 % on CIFAR-10, the same steps and time (BENCHMARKS.md, section 2).
    # Torch's own thread count (every core): on a quiet 2-core machine two threads train it in 8-9 s against
    # 15-16 s for one; only under heavy contention from other processes did one thread win (BENCHMARKS.md).
    # A classroom server runs one run per device at a time by default.
    "tutorial-fast": TrainConfig(
        batch_size=128,
        lr=0.008,
        epochs=2,
        optimizer="adam",
        schedule="onecycle",
        warmup=0.2,
        log_interval=50,
        precision="fp32",
        channels_last=True,
    ),
    # airbench-style recipe (see FastCNN): the airbench94 hyperparameters translated to a mean loss: lr 0.0015 per
    # image, Nesterov momentum 0.85, weight decay 1.3e-3 (coupled to the lr), 2-pixel reflected shifts + alternating
    # flips, flip TTA; bf16 autocast + channels_last measured fastest. Batch 256 rather than 512: the same accuracy
    # in 10 % less time on a 2-core CPU. Label smoothing 0.1 rather than airbench's 0.2: six epochs underfit (train
    # accuracy = test accuracy), and 0.1 measured +0.6 points over two seeds (BENCHMARKS.md).
    "fast-cnn": TrainConfig(
        model="fast-cnn",
        epochs=6,
        batch_size=256,
        lr=0.375,
        momentum=0.85,
        optimizer="nesterov",
        weight_decay=1.3e-3,
        schedule="onecycle",
        warmup=0.2,
        label_smoothing=0.1,
        augment=True,
        translate=2,
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2470, 0.2435, 0.2616),
        precision="auto",
        channels_last=True,
        tta=True,
        log_interval=10,
    ),
}


def lr_for_batch(lr: float, tuned_batch: int, batch: int, optimizer: str = "sgd") -> float:
    """A learning rate tuned at tuned_batch carried over to batch: linearly for SGD, by the square root for Adam."""
    # With a mean loss, a batch k times larger takes k times fewer steps of the same average gradient: SGD keeps
    # its progress per image with a k times larger rate (Goyal et al. 2017, "linear scaling"); Adam normalises the
    # gradient's size, and the square root is the usual rule there (Malladi et al. 2022).
    ratio = batch / tuned_batch
    scaled = lr * (math.sqrt(ratio) if optimizer in ("adam", "adamw") else ratio)
    return min(MAX_LR, float(f"{scaled:.3g}"))


def preset(name: str, **changes) -> TrainConfig:
    """A named preset, optionally with some fields changed, validated."""
    if name not in PRESETS:
        raise ConfigError(f"preset: unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name].replace(**changes)
