"""A run's folder under runs/: read back and validated (or found damaged, with the reason), and written atomically.

The files: config.json (written when the run is submitted), metrics.jsonl (one event per line, appended as the
run goes), checkpoint.pt and results.json (when it ends). A file holding anything this app never writes makes
the record damaged: it is listed with the reason and its files are left exactly as they are. The one thing a
crash leaves is a cut-off last line of metrics.jsonl; the lines before it are the record.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from classroom.config import TrainConfig
from classroom.series import LossCurve

CONFIG, METRICS, RESULTS, CHECKPOINT = "config.json", "metrics.jsonl", "results.json", "checkpoint.pt"
ENDED = ("finished", "stopped", "failed", "interrupted")  # how results.json may say a run ended
CLOCK_AHEAD = 24 * 3600  # a time this far past now is no time this server wrote (a clock set a little fast is fine)
MAX_COUNT = 2**53  # steps, images, epochs: every count stays exact as a float and a JavaScript number
MAX_SAMPLES = 64  # sample predictions a line may carry (a run writes evaluation.SAMPLES)
MAX_FILE_BYTES = 16 * 2**20  # config.json, results.json and each metrics line: far above what a run writes


class Damaged(ValueError):
    """A record file holding what this app never writes (or not JSON at all): the message names the file and the field."""


@dataclass
class Record:
    """What a run folder says about its run; status 'running' when it has no results.json (it never ended)."""

    id: str
    config: TrainConfig = field(default_factory=TrainConfig)  # the defaults stand in when config.json is damaged
    device: str = "unknown"
    created: float = 0.0
    status: str = "running"
    message: str = ""
    started: float | None = None
    ended: float | None = None
    losses: LossCurve = field(default_factory=LossCurve)
    last_batch: dict | None = None
    epochs: list[dict] = field(default_factory=list)
    classes: tuple[str, ...] = ()
    data_label: str = ""
    test_accuracy: float | None = None  # of the final evaluation (a run stopped mid-epoch has one, but no epoch line)
    samples: list[dict] = field(default_factory=list)  # the final evaluation's predictions on the fixed sample images
    executor: str = ""  # local or ray; "" in records from before executors
    node: str = ""  # the machine it trained on, once it ended


# --- reading -------------------------------------------------------------------------------------


def read(folder: Path) -> Record | None:
    """The run recorded in folder, validated, or a damaged Record saying why; None when there is no config.json."""
    if not (folder / CONFIG).exists():
        return None  # an empty folder: the run's first write never happened
    record = Record(folder.name, created=_time_from_id(folder.name))
    try:
        _read_config(folder, record)
        _read_metrics(folder, record)
        _read_results(folder, record)
    except Damaged as e:
        return Record(record.id, record.config, record.device, record.created, "damaged", f"damaged record: {e}")
    return record


def _read_config(folder: Path, record: Record) -> None:
    meta = _load_json(folder / CONFIG)
    where = CONFIG
    if not isinstance(meta, dict):
        raise Damaged(f"{where}: not an object")
    if meta.get("id") != record.id:
        raise Damaged(f"{where}: id does not match its folder")  # it would name, and write to, another folder
    if not isinstance(meta.get("device"), str):
        raise Damaged(f"{where}: device is not text")
    record.device = meta["device"]
    record.executor = check_text(meta, "executor", where) if "executor" in meta else ""
    record.config = check_config(meta.get("config"), where)
    record.data_label = record.config.data
    record.created = check_time(meta, "created", where)


def _read_metrics(folder: Path, record: Record) -> None:
    try:
        f = open(folder / METRICS, "rb")
    except FileNotFoundError:
        return  # it never reported
    except OSError as e:
        raise Damaged(f"{METRICS}: unreadable ({e.strerror or e})") from None
    with f:
        number = 0
        while line := f.readline(MAX_FILE_BYTES + 1):
            number += 1
            where = f"{METRICS} line {number}"
            if not line.endswith(b"\n"):
                if len(line) > MAX_FILE_BYTES:
                    raise Damaged(f"{where}: longer than {MAX_FILE_BYTES // 2**20} MB")
                try:
                    event = _parse(line, where)
                except Damaged:
                    return  # the last line, cut off by a crash mid-write: the record is the lines before it
            else:
                event = _parse(line, where)
            _add_event(record, event, where)


def _add_event(record: Record, event, where: str) -> None:
    if not isinstance(event, dict):
        raise Damaged(f"{where}: not an object")
    if event.get("kind") == "batch":
        check_batch(event, where)
        record.losses.add(event["global_step"], event["loss"])
        record.last_batch = event
    elif event.get("kind") == "epoch":
        check_epoch(event, where)
        classes = tuple(event["per_class_accuracy"])
        if record.epochs and classes != record.classes:
            raise Damaged(f"{where}: per_class_accuracy names other classes than the epochs before")
        record.classes = classes  # for a run that never wrote results.json
        record.epochs.append(event)
    else:
        raise Damaged(f"{where}: kind is neither batch nor epoch")


def _read_results(folder: Path, record: Record) -> None:
    if not (folder / RESULTS).exists():
        return  # it was going when the server stopped
    where = RESULTS
    results = _load_json(folder / RESULTS)
    if not isinstance(results, dict):
        raise Damaged(f"{where}: not an object")
    if results.get("status") not in ENDED:
        raise Damaged(f"{where}: status is not one of {', '.join(ENDED)}")
    if not isinstance(results.get("message"), str):
        raise Damaged(f"{where}: message is not text")
    ended = check_time(results, "ended", where)
    started = check_time(results, "started", where, optional=True)
    classes = results.get("classes", [])
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise Damaged(f"{where}: classes is not a list of names")
    if classes and record.epochs and tuple(classes) != record.classes:
        raise Damaged(f"{where}: classes do not match the epochs in {METRICS}")
    data_label = results.get("data_label", "")
    if not isinstance(data_label, str):
        raise Damaged(f"{where}: data_label is not text")
    check_evaluation(results, where)  # results.json also carries the final evaluation, when there was one
    for key, low, high in (("test_accuracy", 0, 1), ("test_loss", -math.inf, math.inf), ("train_seconds", 0, math.inf)):
        if key in results:
            check_number(results, key, where, low, high)
    if "images" in results:
        check_count(results, "images", where)
    if "samples" in results:
        check_samples(results, where, len(classes or record.classes))
    for key in ("executor", "node", "device"):  # where it ran (a Ray run: the machine and the device there)
        if key in results:
            setattr(record, key, check_text(results, key, where))
    record.status, record.message, record.started, record.ended = results["status"], results["message"], started, ended
    record.classes = tuple(classes) or record.classes
    record.data_label = data_label or record.data_label
    record.test_accuracy = results.get("test_accuracy")
    record.samples = results.get("samples", [])


def _load_json(path: Path):
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise Damaged(f"{path.name}: unreadable ({e.strerror or e})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise Damaged(f"{path.name}: larger than {MAX_FILE_BYTES // 2**20} MB")
    return _parse(raw, path.name)


def _parse(raw: bytes, where: str):
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise Damaged(f"{where}: not UTF-8 text") from None
    except (ValueError, RecursionError):  # RecursionError: thousands of nested brackets
        raise Damaged(f"{where}: not JSON") from None


def _time_from_id(run_id: str) -> float:
    """When a run was created, from its id (YYYYMMDD-HHMMSS-xxxxxx): the stand-in when config.json cannot say."""
    try:
        return time.mktime(time.strptime(run_id[:15], "%Y%m%d-%H%M%S"))
    except (ValueError, OverflowError):
        return 0.0


# --- the fields, as the pages read them -----------------------------------------------------------


def check_config(values, where: str) -> TrainConfig:
    """A TrainConfig from config.json's `config`, every field of the type its default has."""
    if not isinstance(values, dict):
        raise Damaged(f"{where}: config is not an object")
    for f in dataclasses.fields(TrainConfig):
        if f.name in values and isinstance(f.default, bool | str) and type(values[f.name]) is not type(f.default):
            raise Damaged(f"{where}: config: {f.name} is not {'true or false' if isinstance(f.default, bool) else 'text'}")
    try:
        return TrainConfig.from_dict(values)
    except (ValueError, TypeError) as e:  # ConfigError names the field; TypeError: a value of the wrong kind
        raise Damaged(f"{where}: config: {e}") from None


def check_batch(event: dict, where: str) -> None:
    """A batch line: every number the progress bar, the metrics and the loss chart read."""
    for key in ("epoch", "step", "steps_per_epoch", "global_step", "total_steps"):
        check_count(event, key, where, low=1)
    for key in ("lr", "images_per_sec", "train_seconds", "eta_seconds"):
        check_number(event, key, where, low=0)
    check_number(event, "loss", where)
    if event["step"] > event["steps_per_epoch"] or event["global_step"] > event["total_steps"]:
        raise Damaged(f"{where}: a step past the end of its epoch or run")


def check_epoch(event: dict, where: str) -> None:
    """An epoch line: the accuracy chart's numbers, the per-class bars and the confusion matrix."""
    check_count(event, "epoch", where, low=1)
    check_count(event, "epochs", where, low=1)
    if event["epoch"] > event["epochs"]:
        raise Damaged(f"{where}: epoch is past epochs")
    for key in ("train_accuracy", "test_accuracy"):
        check_number(event, key, where, low=0, high=1)
    for key in ("train_loss", "test_loss"):
        check_number(event, key, where)
    for key in ("seconds", "train_seconds"):
        check_number(event, key, where, low=0)
    check_evaluation(event, where, required=True)
    if "samples" in event:  # records from before the live sample predictions have none
        check_samples(event, where, len(event["per_class_accuracy"]))


def check_samples(values: dict, where: str, classes: int) -> None:
    """Sample predictions: a short list of {index, label, top: [[class, probability], ...]}, classes in range."""
    samples = values.get("samples")
    if not isinstance(samples, list) or len(samples) > MAX_SAMPLES:
        raise Damaged(f"{where}: samples is not a list of at most {MAX_SAMPLES} predictions")
    for sample in samples:
        if not isinstance(sample, dict) or set(sample) != {"index", "label", "top"}:
            raise Damaged(f"{where}: samples holds something other than {{index, label, top}}")
        check_count(sample, "index", f"{where}: samples")
        if check_count(sample, "label", f"{where}: samples") >= classes:
            raise Damaged(f"{where}: samples: label is not one of the {classes} classes")
        top = sample["top"]
        if not isinstance(top, list) or not 0 < len(top) <= classes or not all(isinstance(t, list) and len(t) == 2 for t in top):
            raise Damaged(f"{where}: samples: top is not a list of [class, probability] pairs")
        for pair in top:
            c = {"class": pair[0], "probability": pair[1]}
            if check_count(c, "class", f"{where}: samples: top") >= classes:
                raise Damaged(f"{where}: samples: top names a class past the {classes} classes")
            check_number(c, "probability", f"{where}: samples: top", low=0, high=1)


def check_evaluation(values: dict, where: str, required: bool = False) -> None:
    """Per-class accuracy (a name -> fraction dict) and the confusion matrix (square counts, one row per class)."""
    if not required and "per_class_accuracy" not in values and "confusion" not in values:
        return
    per_class = values.get("per_class_accuracy")
    if not isinstance(per_class, dict) or not per_class:
        raise Damaged(f"{where}: per_class_accuracy is not a dict of classes")
    for name in per_class:
        check_number(per_class, name, f"{where}: per_class_accuracy", low=0, high=1)
    confusion, n = values.get("confusion"), len(per_class)
    if not (isinstance(confusion, list) and len(confusion) == n and all(isinstance(r, list) and len(r) == n for r in confusion)):
        raise Damaged(f"{where}: confusion is not a {n} x {n} matrix (one row and column per class)")
    if not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= MAX_COUNT for row in confusion for c in row):
        raise Damaged(f"{where}: confusion holds something other than counts")


def check_text(values: dict, key: str, where: str, limit: int = 300) -> str:
    """A short single line of text."""
    value = values.get(key)
    if not isinstance(value, str) or len(value) > limit or "\n" in value:
        raise Damaged(f"{where}: {key} is not a short line of text")
    return value


def check_count(values: dict, key: str, where: str, low: int = 0) -> int:
    """A whole number from low to MAX_COUNT."""
    value = values.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise Damaged(f"{where}: {key} is not a whole number")
    if not low <= value <= MAX_COUNT:
        raise Damaged(f"{where}: {key} is out of range")
    return value


def check_number(values: dict, key: str, where: str, low: float = -math.inf, high: float = math.inf) -> float:
    """A finite number from low to high."""
    value = values.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Damaged(f"{where}: {key} is not a finite number")
    if not low <= value <= high:
        raise Damaged(f"{where}: {key} is out of range")
    return float(value)


def check_time(values: dict, key: str, where: str, optional: bool = False) -> float | None:
    """A moment (seconds since 1970) no later than a little past now; None allowed when optional."""
    value = values.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise Damaged(f"{where}: {key} is not a time")
    if value > time.time() + CLOCK_AHEAD:
        raise Damaged(f"{where}: {key} is in the future")
    return float(value)


# --- writing -------------------------------------------------------------------------------------


def write_json(path: Path, value: dict) -> None:
    """Replace path with value as JSON, atomically: readers see the old file or the new one, never half."""
    write_bytes(path, json.dumps(value, indent=1).encode())


def write_bytes(path: Path, content: bytes) -> None:
    """Replace path with content, atomically; when the write fails (a full disk) no .tmp file is left behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(content)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise


def append_line(path: Path, value: dict) -> None:
    """One JSON line at the end of path, in one write: a crash loses at most that line."""
    with open(path, "a") as f:
        f.write(json.dumps(value) + "\n")
