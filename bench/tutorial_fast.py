"""`tutorial-fast` (the same Net, trained the fast way) beside the tutorial's own loop, in one invocation.

    .venv/bin/python bench/tutorial_fast.py [--reference-epochs 1] [--reference-json FILE]

The reference is the tutorial's loop from bench/tutorial.py (DataLoader, batch 4, 2 workers). By default it is
measured here for --reference-epochs epochs and its time extrapolated linearly to the tutorial's 2 epochs (the
loop's per-epoch cost is flat); with --reference-json it reuses a bench/tutorial.py result file instead (same
machine, a different invocation). Ours runs before and after the reference; the slower run is quoted.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from common import dump, load, lossless_check, machine, parser, peak_rss_mb, with_changes
from tutorial import tutorial_loop

from classroom.config import preset
from classroom.evaluation import accuracy_lines
from classroom.training import EpochEnd, train


def ours(args, dataset) -> dict:
    config = preset(args.preset, data=args.data, data_dir=args.data_dir)
    if args.epochs:
        config = config.replace(epochs=args.epochs)
    config = with_changes(config, args.set)

    def report(event):
        if isinstance(event, EpochEnd):
            print(f"epoch {event.epoch}: {event.seconds:.1f} s, test accuracy {100 * event.test_accuracy:.2f} %", flush=True)

    cpu = time.process_time()
    result = train(config, dataset, on_event=report)
    cpu = time.process_time() - cpu
    print(accuracy_lines(result.evaluation)[0], f"({result.train_seconds:.1f} s training, {cpu:.1f} CPU-s for train())")
    return {
        "test_accuracy": result.evaluation.accuracy,
        "train_seconds": result.train_seconds,
        "cpu_seconds": cpu,
        "epoch_accuracy": [e.test_accuracy for e in result.history],
        "peak_rss_mb": peak_rss_mb(),
        "config": config.to_dict(),
        "jpeg_vs_lossless": lossless_check(result.model, config, dataset),
    }


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--preset", default="tutorial-fast")
    p.add_argument("--epochs", type=int, default=0, help="override the preset's epochs")
    p.add_argument("--reference-epochs", type=int, default=1)
    p.add_argument("--reference-data", choices=("folder", "memory"), default="folder")
    p.add_argument("--reference-json", default="", help="reuse the reference of a bench/tutorial.py --json-out file")
    p.add_argument("--skip-reference", action="store_true")
    args = p.parse_args()
    info = machine()
    print(info)
    dataset = load(args)
    runs = [ours(args, dataset)]
    ref = None
    if args.reference_json:
        ref = json.loads(Path(args.reference_json).read_text())["reference"] | {"source": args.reference_json}
    elif not args.skip_reference:
        print(f"=== reference: the tutorial's loop, {args.reference_epochs} epoch(s), extrapolated to 2 ===")
        args.steps = 0
        measured = tutorial_loop(argparse_copy(args, epochs=args.reference_epochs), dataset)
        ref = measured | {
            "measured_epochs": args.reference_epochs,
            "measured_seconds": measured["train_seconds"],
            "train_seconds": measured["train_seconds"] * 2 / args.reference_epochs,
            "extrapolated": args.reference_epochs != 2,
        }
        runs.append(ours(args, dataset))
    mine = max(runs, key=lambda r: r["train_seconds"]) | {"runs": [(r["test_accuracy"], r["train_seconds"]) for r in runs]}
    print(f"ours ({args.preset}): {100 * mine['test_accuracy']:.2f} % in {mine['train_seconds']:.1f} s "
          f"(runs: {[(round(100 * a, 2), round(s, 1)) for a, s in mine['runs']]})")  # fmt: skip
    if ref:
        note = f" (measured {ref.get('measured_epochs', 2)} epoch(s), extrapolated)" if ref.get("extrapolated") else ""
        print(f"tutorial loop, 2 epochs: {ref['train_seconds']:.1f} s{note}")
        print(f"speed-up: {ref['train_seconds'] / mine['train_seconds']:.1f}x")
    dump(args, {"bench": "tutorial-fast", "machine": info, "args": vars(args), "ours": mine, "reference": ref})


def argparse_copy(args, **changes):
    """A copy of the parsed arguments with some values changed."""
    import argparse

    return argparse.Namespace(**(vars(args) | changes))


if __name__ == "__main__":
    main()
