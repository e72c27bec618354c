"""Dashboard overhead: a run through the RunManager while a 'page' polls get() every 0.5 s, vs bare train().

    .venv/bin/python bench/overhead.py [--preset tutorial-fast] [--epochs 1] [--max-steps 0] [--repeats 3]

Both sides use the same config, data and process, alternating bare / managed so that the machine's load
drifts over both alike. Two measures, each the median of the paired ratios managed / bare:
- wall: images trained / train_seconds (the engine's own clock) - what a user sees, but on a shared machine
  it mostly measures the neighbours;
- CPU: images trained / CPU-seconds of this process over the whole run (the polling thread, the RunManager's
  event recording, metrics.jsonl writes and checkpoint included; evaluation on both sides) - the overhead
  itself, robust to other processes' load. Use --preset with threads=1 so CPU time is not OpenMP spinning.
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


def bare(config, dataset) -> tuple[float, float]:
    """(train_seconds, CPU-seconds of the whole call)."""
    cpu = time.process_time()
    seconds = train(config, dataset).train_seconds
    return seconds, time.process_time() - cpu


def managed(config, runs_dir: str) -> tuple[float, float, int]:
    """Submit through a RunManager and poll it like a page's fragment; returns (train_seconds, CPU-seconds, polls)."""
    cpu = time.process_time()
    manager = RunManager(runs_dir)
    run_id = manager.submit(config, owner="bench")
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
    return snap.epochs[-1]["train_seconds"], time.process_time() - cpu, polls[0]


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--preset", default="tutorial-fast")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--max-steps", type=int, default=0)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    machine_info = machine()
    print(machine_info)
    dataset = load(args)
    config = preset(args.preset, data=args.data, data_dir=args.data_dir, epochs=args.epochs, max_steps=args.max_steps)
    images = min(len(dataset.train_x), (config.max_steps or 10**9) * config.batch_size) * config.epochs
    wall = {"bare": [], "managed": []}
    cpu = {"bare": [], "managed": []}
    total_polls = 0
    with tempfile.TemporaryDirectory() as runs_dir:
        bare(config.replace(epochs=1, max_steps=100), dataset)  # warm-up: first-call initialisation, not overhead
        managed(config.replace(epochs=1, max_steps=100), runs_dir)
        for i in range(args.repeats):
            t, c = bare(config, dataset)
            wall["bare"].append(images / t)
            cpu["bare"].append(images / c)
            t, c, polls = managed(config, runs_dir)
            total_polls += polls
            wall["managed"].append(images / t)
            cpu["managed"].append(images / c)
            print(
                f"repeat {i + 1}: bare {wall['bare'][-1]:.0f} img/s wall, {cpu['bare'][-1]:.0f} img/CPU-s; "
                f"managed {wall['managed'][-1]:.0f} img/s wall, {cpu['managed'][-1]:.0f} img/CPU-s ({polls} polls)",
                flush=True,
            )
    ratio = {}
    for name, rates in (("wall", wall), ("cpu", cpu)):
        # median of the paired ratios: each managed run is compared with the bare run just before it
        ratio[name] = statistics.median(m / b for m, b in zip(rates["managed"], rates["bare"]))
        print(f"{name}: managed+polling / bare, median of {args.repeats} paired ratios: {ratio[name]:.3f} (target 0.95)")
    results = {"bench": "overhead", "machine": machine_info, "args": vars(args), "images_per_sec_wall": wall}
    results |= {"images_per_cpu_second": cpu, "ratio": ratio, "polls": total_polls, "peak_rss_mb": peak_rss_mb()}
    dump(args, results)


if __name__ == "__main__":
    main()
