"""Dashboard overhead: a run through the RunManager while a 'page' polls get() every 0.5 s, vs bare train().

    .venv/bin/python bench/overhead.py [--preset tutorial-fast] [--epochs 1] [--max-steps 0] [--repeats 3]

Both sides use the same config, data and process, alternating bare / managed so that the machine's load
drifts over both alike. images/s = images trained / train_seconds (the engine's own clock). Median of repeats.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time

from common import dump, load, machine, parser, peak_rss_mb

from classroom.config import preset
from classroom.runs import RunManager
from classroom.training import train


def images_per_second(config, train_seconds: float, n: int) -> float:
    steps = config.max_steps or -(-n // config.batch_size)
    return min(n, steps * config.batch_size) * config.epochs / train_seconds


def bare(config, dataset) -> float:
    return train(config, dataset).train_seconds


def managed(config, runs_dir: str) -> tuple[float, int]:
    """Submit through a RunManager and poll it like a page's fragment; returns (train_seconds, polls)."""
    manager = RunManager(runs_dir)
    run_id = manager.submit(config, session="bench")
    polls, done = [0], threading.Event()

    def page():  # st.fragment(run_every=0.5) calling manager.get(run_id) and drawing from the snapshot
        while not done.is_set():
            snap = manager.get(run_id)
            _ = (snap.status, list(snap.losses), snap.last_batch, snap.epochs, snap.progress)
            polls[0] += 1
            done.wait(0.5)

    poller = threading.Thread(target=page, daemon=True)
    poller.start()
    snap = manager.wait(run_id, timeout=3600)
    done.set()
    poller.join()
    manager.shutdown()
    assert snap.status == "finished", snap.message
    return snap.epochs[-1]["train_seconds"], polls[0]


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--preset", default="tutorial-fast")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--max-steps", type=int, default=0)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    info = machine()
    print(info)
    dataset = load(args)
    config = preset(args.preset, data=args.data, data_dir=args.data_dir, epochs=args.epochs, max_steps=args.max_steps)
    rates = {"bare": [], "managed": []}
    total_polls = 0
    with tempfile.TemporaryDirectory() as runs_dir:
        for i in range(args.repeats):
            t = bare(config, dataset)
            rates["bare"].append(images_per_second(config, t, len(dataset.train_x)))
            t, polls = managed(config, runs_dir)
            total_polls += polls
            rates["managed"].append(images_per_second(config, t, len(dataset.train_x)))
            print(f"repeat {i + 1}: bare {rates['bare'][-1]:.0f} img/s, managed {rates['managed'][-1]:.0f} img/s ({polls} polls)")
            time.sleep(0.1)
    med = {k: statistics.median(v) for k, v in rates.items()}
    ratio = med["managed"] / med["bare"]
    print(f"median: bare {med['bare']:.0f} img/s, managed+polling {med['managed']:.0f} img/s, ratio {ratio:.3f} (target >= 0.95)")
    dump(args, {"bench": "overhead", "machine": info, "args": vars(args), "images_per_sec": rates, "median": med,
                "ratio": ratio, "polls": total_polls, "peak_rss_mb": peak_rss_mb()})  # fmt: skip


if __name__ == "__main__":
    main()
