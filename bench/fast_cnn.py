"""`fast-cnn` on real CIFAR-10: test accuracy per epoch, training seconds, CPU-seconds, peak memory.

    .venv/bin/python bench/fast_cnn.py [--preset fast-cnn] [--epochs N] [--precision fp32|bf16|auto] [--bias-boost X]

train_seconds is the engine's wall clock of the training steps (evaluation excluded). On a shared machine the
wall clock mostly measures the neighbours, so the CPU-seconds of the whole train() call (evaluation passes
included, so an over-estimate) are printed too: divided by 2 they estimate the time on 2 dedicated cores.
"""

from __future__ import annotations

import time

from common import dump, load, lossless_check, machine, parser, peak_rss_mb, with_changes

from classroom.config import preset
from classroom.evaluation import accuracy_lines
from classroom.training import EpochEnd, train


def boost(factor: float) -> None:
    """Give FastCNN's BatchNorm biases this learning-rate factor instead of the model's own (to measure what it buys)."""
    from classroom.models import FastCNN

    built = FastCNN.__init__

    def init(self, *a, **k):
        built(self, *a, **k)
        self.lr_scales = {name: factor for name in self.lr_scales}

    FastCNN.__init__ = init


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--preset", default="fast-cnn")
    p.add_argument("--epochs", type=int, default=0)
    p.add_argument("--precision", default="")
    p.add_argument("--channels-last", type=int, default=-1)
    p.add_argument("--max-steps", type=int, default=0)
    p.add_argument("--bias-boost", type=float, default=0, help="the BatchNorm biases' learning-rate factor (model: 64)")
    args = p.parse_args()
    if args.bias_boost:
        boost(args.bias_boost)
    info = machine()
    print(info)
    dataset = load(args)
    changes = {"data": args.data, "data_dir": args.data_dir, "max_steps": args.max_steps}
    if args.epochs:
        changes["epochs"] = args.epochs
    if args.precision:
        changes["precision"] = args.precision
    if args.channels_last >= 0:
        changes["channels_last"] = bool(args.channels_last)
    config = with_changes(preset(args.preset, **changes), args.set)
    cpu0, wall0 = time.process_time(), time.perf_counter()

    def report(event):
        if isinstance(event, EpochEnd):
            cpu = time.process_time() - cpu0
            wall = time.perf_counter() - wall0
            print(
                f"epoch {event.epoch}/{event.epochs}: test {100 * event.test_accuracy:.2f} % "
                f"(train batches {100 * event.train_accuracy:.1f} %), train {event.train_seconds:.0f} s "
                f"wall, {cpu:.0f} CPU-s so far (wall incl. eval {wall:.0f} s)",
                flush=True,
            )

    result = train(config, dataset, on_event=report)
    cpu = time.process_time() - cpu0
    print("\n".join(accuracy_lines(result.evaluation)[:1]))
    print(f"{args.preset}: {100 * result.evaluation.accuracy:.2f} % in {result.train_seconds:.1f} s training (wall); "
          f"{cpu:.0f} CPU-s for train() incl. evaluation = {cpu / 2:.0f} s on 2 dedicated cores (estimate); "
          f"peak RSS {peak_rss_mb():.0f} MB")  # fmt: skip
    check = None if args.max_steps else lossless_check(result.model, config, dataset)
    results = {"bench": "fast-cnn", "machine": info, "args": vars(args), "config": config.to_dict()}
    results |= {"test_accuracy": result.evaluation.accuracy, "train_seconds": result.train_seconds, "cpu_seconds": cpu}
    results |= {"epoch_accuracy": [e.test_accuracy for e in result.history], "peak_rss_mb": peak_rss_mb()}
    results |= {"epoch_train_seconds": [e.train_seconds for e in result.history], "jpeg_vs_lossless": check}
    dump(args, results)


if __name__ == "__main__":
    main()
