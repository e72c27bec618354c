"""Shared by the benchmarks: the data, the machine, peak memory, and the JPEG-vs-lossless check."""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as `python bench/x.py` from the repo root

from classroom import data  # noqa: E402
from classroom.config import ConfigError  # noqa: E402
from classroom.evaluation import evaluate  # noqa: E402

JPEG_FOLDER = "/work/shared/data/cifar10-jpg"
LOSSLESS = "/work/shared/data/cifar10-lossless-test1k.npz"


def parser(description: str) -> argparse.ArgumentParser:
    """The flags every benchmark takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--data", default=f"folder:{JPEG_FOLDER}", help="data source for classroom.data.load")
    p.add_argument("--data-dir", default="/tmp/bench-data", help="decoded cache (keep it out of the repo)")
    p.add_argument("--json-out", default="", help="also write the results to this JSON file")
    p.add_argument("--set", action="append", default=[], help="FIELD=VALUE: change one preset field (repeatable)")
    return p


def with_changes(config, items: list[str]):
    """The config with --set FIELD=VALUE changes applied, each value parsed as the field's type."""
    for item in items:  # e.g. --set batch_size=256 --set lr=0.2: try a variation of the preset
        key, _, value = item.partition("=")
        if key not in config.to_dict():
            raise SystemExit(f"--set {item}: {key!r} is not a TrainConfig field")
        kind = type(getattr(config, key))
        if kind is bool and value.lower() not in ("true", "false", "1", "0"):
            raise SystemExit(f"--set {item}: {key} takes true or false")
        try:
            parsed = value.lower() in ("true", "1") if kind is bool else kind(value)
            config = config.replace(**{key: parsed})
        except (ValueError, ConfigError) as e:
            raise SystemExit(f"--set {item}: {e}") from None
    return config


def load(args) -> data.Dataset:
    """The data set, decoded once (cached under --data-dir); the load time is printed, never counted."""
    t = time.perf_counter()
    ds = data.load(args.data, args.data_dir)
    print(f"data: {ds.label}, {len(ds.train_x)} train / {len(ds.test_x)} test, loaded in {time.perf_counter() - t:.1f} s")
    return ds


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> dict:
    """What the numbers were measured on."""
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")), "")
    except OSError:
        model = platform.processor()
    load1 = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"
    return {
        "cpu": model,
        "cores": torch.get_num_threads(),
        "bf16": torch.cpu._is_avx512_bf16_supported(),
        "amx": torch.cpu._is_amx_tile_supported(),
        "torch": torch.__version__,
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "load_avg_1min_at_start": load1,
    }


def lossless_check(model, config, dataset) -> dict | None:
    """Accuracy on the 1,000 original (lossless) test images and on the JPEG copies of the same 1,000 images."""
    path = Path(LOSSLESS)
    if not path.is_file() or len(dataset.test_x) != 10000:
        return None
    with np.load(path, allow_pickle=False) as z:
        x = torch.from_numpy(z["x_test"]).permute(0, 3, 1, 2).contiguous()
        y = torch.from_numpy(z["y_test"]).long()
    # The JPEG test folder is sorted by class, numbered in the original order within each class: the k-th
    # image of class c in the standard test set is test/<c>/k.jpg, i.e. index c * 1000 + k here.
    rank = torch.zeros_like(y)
    seen = [0] * 10
    for i, c in enumerate(y.tolist()):
        rank[i], seen[c] = seen[c], seen[c] + 1
    jpeg_index = y * 1000 + rank
    assert torch.equal(dataset.test_y[jpeg_index], y), "the JPEG folder is not in the documented order"
    kw = dict(mean=config.mean, std=config.std, channels_last=config.channels_last, tta=config.tta)
    lossless = evaluate(model, x, y, dataset.classes, **kw).accuracy
    jpeg = evaluate(model, dataset.test_x[jpeg_index], y, dataset.classes, **kw).accuracy
    return {"lossless_1k": lossless, "jpeg_same_1k": jpeg}


def dump(args, results: dict) -> None:
    """Print the results as one JSON line (and write them to --json-out)."""
    line = json.dumps(results)
    print(line)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2) + "\n")
