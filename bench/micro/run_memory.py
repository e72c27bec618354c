"""Peak memory growth of three training steps against classroom.budget's estimate, one config per process.

usage: python bench/micro/run_memory.py   (runs each config below in a fresh interpreter and prints a table)
"""

import subprocess
import sys
import threading
import time

CONFIGS = [("fast-cnn", 256), ("fast-cnn", 1024), ("fast-cnn", 4096), ("tutorial", 4096), ("tutorial-fast", 4096)]


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def measure(preset: str, batch: int) -> None:
    """Train three steps of the preset at this batch on shapes (CPU) and print peak growth vs the estimate."""
    from classroom import budget, data
    from classroom.config import PRESETS
    from classroom.training import train

    dataset = data.make_shapes(n_train=5000, n_test=500)
    config = PRESETS[preset].replace(batch_size=batch, epochs=1, max_steps=3, data="shapes", device="cpu", log_interval=1)
    base = peak = rss()
    done = threading.Event()

    def watch():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss())
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    train(config, dataset)
    done.set()
    watcher.join()
    grown, estimate = (peak - base) / 2**20, budget.estimate_bytes(config) / 2**20
    print(f"{preset:14s} batch {batch:5d}  measured +{grown:6.0f} MB  estimate {estimate:6.0f} MB")


if __name__ == "__main__":
    if len(sys.argv) == 3:
        measure(sys.argv[1], int(sys.argv[2]))
    else:
        for preset, batch in CONFIGS:
            subprocess.run([sys.executable, __file__, preset, str(batch)], check=True)
