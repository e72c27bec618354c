"""The command line: python -m classroom train | evaluate | download."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from classroom import checkpoints, data
from classroom.config import PRESETS, ConfigError, TrainConfig, lr_for_batch, preset
from classroom.evaluation import accuracy_lines
from classroom.training import BatchEnd, Control, EpochEnd, reevaluate, resolve_device, train

# (flag, TrainConfig field, type, help) for the knobs the command line exposes.
KNOBS = [
    ("--model", "model", str, "net | wide-net | fast-cnn"),
    ("--epochs", "epochs", int, "passes over the training set"),
    ("--batch-size", "batch_size", int, "images per step"),
    ("--lr", "lr", float, "peak learning rate"),
    ("--momentum", "momentum", float, "SGD momentum"),
    ("--optimizer", "optimizer", str, "sgd | nesterov | adam | adamw"),
    ("--weight-decay", "weight_decay", float, "L2 penalty"),
    ("--device", "device", str, "auto | cpu | cuda | mps"),
    ("--precision", "precision", str, "fp32 | bf16 | auto"),
    ("--threads", "threads", int, "CPU threads (0: torch's default)"),
    ("--data", "data", str, "cifar10 | folder:PATH | shapes (default: cifar10 if it is in --data-dir, else shapes)"),
    ("--data-dir", "data_dir", str, "where CIFAR-10 and decoded caches live"),
    ("--seed", "seed", int, "random seed"),
    ("--log-interval", "log_interval", int, "steps between loss lines"),
    ("--minutes", "minutes", float, "time budget for training + test passes, sized to fill it (0: use --epochs)"),
]


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line and exits 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m classroom", description="Train and evaluate the CIFAR-10 tutorial CNN and faster ones.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    t = commands.add_parser("train", help="train a model and save its checkpoint")
    t.add_argument("--preset", default="tutorial", help=f"starting point: {', '.join(PRESETS)}")
    for flag, _, kind, text in KNOBS:
        t.add_argument(flag, type=kind, help=text)
    t.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None, help="random crop + flip")
    t.add_argument(
        "--cuda-graph", action=argparse.BooleanOptionalAction, default=None,
        help="on CUDA, capture the whole step in a CUDA graph and replay it (eager elsewhere)",
    )  # fmt: skip
    t.add_argument("--out", default="checkpoints", help="folder for the checkpoint")
    t.add_argument(
        "--dry-run", action="store_true",
        help="a few batches of each phase, to check the set-up; saves MODEL.dry-run.pt, never MODEL.pt",
    )  # fmt: skip
    t.add_argument("--json", action="store_true", help="end with one JSON line of results")

    e = commands.add_parser("evaluate", help="print the tutorial's accuracy lines for a saved checkpoint")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--data", default=None, help="data source (default: the one it was trained on)")
    e.add_argument("--data-dir", default=None)
    e.add_argument("--device", default="cpu", help="auto | cpu | cuda | mps")

    d = commands.add_parser("download", help="fetch CIFAR-10 ahead of time")
    d.add_argument("--data-dir", default="data")

    args = parser.parse_args(argv)
    try:
        return {"train": cmd_train, "evaluate": cmd_evaluate, "download": cmd_download}[args.command](args)
    except ConfigError as err:
        print(f"python -m classroom: error: {err}", file=sys.stderr)
        return 2
    except (data.DataError, checkpoints.CheckpointError, OSError) as err:
        print(f"python -m classroom: {err}", file=sys.stderr)
        return 1


def cmd_train(args) -> int:
    changes = {field: getattr(args, flag[2:].replace("-", "_")) for flag, field, _, _ in KNOBS}
    changes = {k: v for k, v in changes.items() if v is not None}
    if args.augment is not None:
        changes["augment"] = args.augment
    if args.cuda_graph is not None:
        changes["cuda_graph"] = args.cuda_graph
    if args.dry_run:
        changes |= {"epochs": 1, "max_steps": 5, "log_interval": 1, "minutes": 0.0}  # a set-up check, not a budget
    config = preset(args.preset, **changes)
    _check_device(config.device)  # before any data is loaded or decoded
    _warn_batch(args.preset, config)
    if args.data is None:
        config = config.replace(data=_default_source(config.data_dir))
    dataset = data.load(config.data, config.data_dir, progress=_progress("decoding images"))

    def report(event):
        if isinstance(event, BatchEnd) and event.step % config.log_interval == 0:
            print(f"[{event.epoch}, {event.step:5d}] loss: {event.loss:.3f}", flush=True)
        elif isinstance(event, EpochEnd):
            print(
                f"epoch {event.epoch}/{event.epochs}: train loss {event.train_loss:.3f}, "
                f"test accuracy {100 * event.test_accuracy:.1f} % ({event.seconds:.1f} s)",
                flush=True,
            )

    control = Control()
    try:
        result = train(config, dataset, on_event=report, control=control)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    if result.status == "failed":
        print(f"python -m classroom: training failed: {result.message}", file=sys.stderr)
        return 1
    print("Finished Training")
    if result.sized or result.notes:
        print(result.message)  # how a time budget sized the run; an eager fallback
    ev = result.evaluation
    for line in accuracy_lines(ev):
        print(line)
    metrics = ev.summary() | {"train_seconds": result.train_seconds, "bf16": result.bf16}
    # A dry run checks the set-up; its few batches must never replace a trained model of the same name.
    name = f"{config.model}.dry-run.pt" if args.dry_run else f"{config.model}.pt"
    path = checkpoints.save(Path(args.out) / name, result.model, config, dataset.classes, metrics)
    kept = f" (a dry run never writes {Path(args.out) / f'{config.model}.pt'})" if args.dry_run else ""
    print(f"Saved the model to {path}{kept}")
    if args.json:
        summary = {
            "test_accuracy": ev.accuracy,
            "test_loss": ev.loss,
            "train_seconds": round(result.train_seconds, 3),
            "epochs": len(result.history),
            "sized": result.sized,  # {} without --minutes
            "device": result.device,
            "model": config.model,
            "preset": args.preset,
            "data": dataset.label,
            "per_class_accuracy": ev.per_class_accuracy,
            "checkpoint": str(path),
        }
        print(json.dumps(summary))
    return 0


def _default_source(data_dir: str) -> str:
    """CIFAR-10, the tutorial's data, when it is in data_dir (downloaded or baked into the image); else the shapes set,
    said on stderr so that no one takes a synthetic run for the tutorial."""
    if data.cifar10_present(data_dir):
        return "cifar10"
    print(
        f"python -m classroom: CIFAR-10 is not in {data_dir}, so this trains on the synthetic shapes set "
        f"(get CIFAR-10: python -m classroom download --data-dir {data_dir}; choose a set: --data)",
        file=sys.stderr,
    )
    return "shapes"


def _available_devices() -> list[str]:
    """The devices this machine can train on, as --device spells them."""
    found = ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        found.append("mps")
    return found


def _check_device(name: str) -> str:
    """The torch device name for --device; ConfigError (one line, exit 2) naming it and what this machine has."""
    TrainConfig(device=name).validate()  # an unknown name: "device: unknown device ..."
    try:
        return str(resolve_device(name))
    except ValueError:  # a known kind this machine lacks (cuda, mps) or a GPU number past the last
        raise ConfigError(
            f"device: {name} is not available on this machine, which has: {', '.join(_available_devices())} "
            "(use --device cpu, or auto for the fastest)"
        ) from None


def _warn_batch(name: str, config: TrainConfig) -> None:
    """One line on stderr when the preset's learning rate, unchanged, meets a batch size it was not tuned for."""
    tuned = PRESETS[name]
    if config.batch_size == tuned.batch_size or config.lr != tuned.lr:
        return
    scaled = lr_for_batch(tuned.lr, tuned.batch_size, config.batch_size, config.optimizer)
    # Bigger batches take fewer steps of the same size: too few to learn; smaller ones take noisier steps: unstable.
    risk = "may learn little" if config.batch_size > tuned.batch_size else "may be too high for it"
    print(
        f"python -m classroom: warning: the {name} preset's learning rate {tuned.lr:g} was tuned for batch "
        f"{tuned.batch_size}, not {config.batch_size}, and {risk}; try --lr {scaled:g} (scaled with the "
        f"batch) or --batch-size {tuned.batch_size}",
        file=sys.stderr,
    )


def cmd_evaluate(args) -> int:
    device = _check_device(args.device)
    model, info = checkpoints.load(args.checkpoint, device=device)
    config = info["config"]
    dataset = data.load(args.data or config.data, args.data_dir or config.data_dir, progress=_progress("decoding images"))
    if len(dataset.classes) != len(info["classes"]):
        raise checkpoints.CheckpointError(
            f"{args.checkpoint} knows {len(info['classes'])} classes but {dataset.label} has {len(dataset.classes)}"
        )
    ev = reevaluate(model, info, dataset)  # as the run evaluated: its precision, TTA and test images
    for line in accuracy_lines(ev):
        print(line)
    return 0


def cmd_download(args) -> int:
    path = data.download_cifar10(args.data_dir, progress=_progress("downloading CIFAR-10", unit=2**20, unit_name="MB"))
    print(f"\nCIFAR-10 is ready in {path}", file=sys.stderr)
    return 0


def _progress(what: str, unit: int = 1, unit_name: str = ""):
    last = [0.0]

    def show(done: int, total: int) -> None:
        if time.monotonic() - last[0] > 0.5 and sys.stderr.isatty():
            last[0] = time.monotonic()
            of = f" of {total // unit}" if total else ""
            print(f"\r{what}: {done // unit}{of} {unit_name}", end="", file=sys.stderr, flush=True)

    return show


if __name__ == "__main__":
    sys.exit(main())
