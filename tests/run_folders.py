"""Run folders written by hand, as a finished run leaves them (no training), and the ways a probe damages them."""

from __future__ import annotations

import json
import time
from pathlib import Path

from classroom.config import TrainConfig
from classroom.training import BatchEnd, EpochEnd, event_dict

CONFIG = TrainConfig(data="shapes", batch_size=64, lr=0.05, epochs=2, log_interval=2, device="cpu", name="by hand")
CLASSES = ("circle", "ring", "square")
STEPS = 4  # per epoch


def events(epochs: int = 2) -> list[dict]:
    """The metrics.jsonl events of a short run, made by the same dataclasses the trainer emits."""
    out, total = [], STEPS * epochs
    for epoch in range(1, epochs + 1):
        for step in range(2, STEPS + 1, 2):
            global_step = (epoch - 1) * STEPS + step
            loss, seconds = 1.5 / global_step, 0.1 * global_step
            out.append(event_dict(BatchEnd(epoch, step, STEPS, global_step, total, loss, 0.05, 900.0, seconds, 0.1)))
        confusion = [[5, 1, 0], [0, 6, 0], [1, 0, 5]]
        per_class = {c: row[i] / sum(row) for i, (c, row) in enumerate(zip(CLASSES, confusion))}
        out.append(event_dict(EpochEnd(epoch, epochs, 0.9, 0.6, 0.8, 16 / 18, per_class, confusion, 0.4, 0.4 * epoch)))
    return out


def write_run(runs_dir: Path, run_id: str, ended: bool = True) -> Path:
    """A finished run's folder (config.json, metrics.jsonl, results.json; no checkpoint), or one still going."""
    folder = runs_dir / run_id
    folder.mkdir(parents=True)
    created = time.time() - 3600
    meta = {"id": run_id, "device": "cpu", "created": created, "config": CONFIG.to_dict()}
    (folder / "config.json").write_text(json.dumps(meta, indent=1))
    (folder / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events()))
    if ended:
        last = events()[-1]
        results = {"status": "finished", "message": "", "ended": created + 10, "started": created + 1, "classes": list(CLASSES),
                   "data_label": "shapes (synthetic)", "test_accuracy": last["test_accuracy"], "test_loss": last["test_loss"],
                   "per_class_accuracy": last["per_class_accuracy"], "confusion": last["confusion"], "images": 18,
                   "train_seconds": last["train_seconds"]}  # fmt: skip
        (folder / "results.json").write_text(json.dumps(results, indent=1))
    return folder


def edit_json(path: Path, change) -> None:
    """Rewrite a JSON file after change(value) edited it in place."""
    value = json.loads(path.read_text())
    change(value)
    path.write_text(json.dumps(value))


def edit_line(folder: Path, kind: str, change, which: int = 0) -> None:
    """Edit the which-th metrics.jsonl line of this kind (batch or epoch) with change(event)."""
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    indices = [i for i, line in enumerate(lines) if json.loads(line)["kind"] == kind]
    event = json.loads(lines[indices[which]])
    change(event)
    lines[indices[which]] = json.dumps(event)
    (folder / "metrics.jsonl").write_text("\n".join(lines) + "\n")


def files(folder: Path) -> dict[str, bytes]:
    """Every file under folder with its bytes: to check nothing was rewritten."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def meta(**changes):
    """Damage: config.json's fields changed."""
    return lambda f: edit_json(f / "config.json", lambda m: m.update(changes))


def config(**changes):
    """Damage: fields of the TrainConfig in config.json changed."""
    return lambda f: edit_json(f / "config.json", lambda m: m["config"].update(changes))


def line(kind: str, change, which: int = 0):
    """Damage: one metrics.jsonl line edited."""
    return lambda f: edit_line(f, kind, change, which)


def results(**changes):
    """Damage: results.json's fields changed."""
    return lambda f: edit_json(f / "results.json", lambda r: r.update(changes))


def content(name: str, text: str | bytes, before: bool = False):
    """Damage: a file's content replaced (or, before=True, put before what it held)."""

    def damage(folder: Path) -> None:
        path = folder / name
        raw = text.encode() if isinstance(text, str) else text
        path.write_bytes(raw + path.read_bytes() if before else raw)

    return damage


def nan_created(folder: Path) -> None:
    """Damage: created is NaN, which Python's json reads (and writes) though JSON has no such number."""
    path = folder / "config.json"
    path.write_text(path.read_text().replace('"created": ', '"created": NaN, "was": '))


# Each way a record can be damaged: (what the probe does to a finished run's folder, words the reason must contain).
DAMAGE = {
    "created is text": (meta(created="yesterday"), "config.json: created is not a time"),
    "created far ahead": (meta(created=1e300), "config.json: created is in the future"),
    "created NaN": (nan_created, "config.json: created is not a time"),
    "config id of another folder": (meta(id="../../elsewhere"), "config.json: id does not match its folder"),
    "config lr is text": (config(lr="fast"), "config.json: config: lr"),
    "config name is a number": (config(name=7), "config.json: config: name is not text"),
    "config not JSON": (content("config.json", "{not json"), "config.json: not JSON"),
    "config a list": (content("config.json", "[1, 2]"), "config.json: not an object"),
    "epoch without test_accuracy": (line("epoch", lambda e: e.pop("test_accuracy")), "metrics.jsonl line 3: test_accuracy"),
    "batch without epoch": (line("batch", lambda e: e.pop("epoch")), "metrics.jsonl line 1: epoch is not a whole number"),
    "batch past the run's end": (line("batch", lambda e: e.update(global_step=99)), "past the end of its epoch or run"),
    "batch loss infinite": (line("batch", lambda e: e.update(loss=float("inf"))), "loss is not a finite number"),
    "no steps per epoch": (line("batch", lambda e: e.update(steps_per_epoch=0)), "steps_per_epoch is out of range"),
    "accuracy above 1": (line("epoch", lambda e: e.update(test_accuracy=3.0)), "test_accuracy is out of range"),
    "per-class accuracy text": (line("epoch", lambda e: e["per_class_accuracy"].update(ring="most")), "ring is not a finite"),
    "confusion not square": (line("epoch", lambda e: e["confusion"].pop()), "confusion is not a 3 x 3 matrix"),
    "confusion of fractions": (line("epoch", lambda e: e["confusion"][0].__setitem__(0, 0.5)), "confusion holds something other"),
    "classes change": (line("epoch", lambda e: e.update(per_class_accuracy=dict.fromkeys("abc", 1.0)), 1), "other classes than"),
    "a line of another kind": (line("batch", lambda e: e.update(kind="end")), "kind is neither batch nor epoch"),
    "garbage line inside": (content("metrics.jsonl", "oops\n", before=True), "metrics.jsonl line 1: not JSON"),
    "not UTF-8 inside": (content("metrics.jsonl", b"\xff\xfe\n", before=True), "metrics.jsonl line 1: not UTF-8"),
    "results a list": (content("results.json", "[]"), "results.json: not an object"),
    "results status unknown": (results(status="exploded"), "results.json: status is not one of"),
    "results status a number": (results(status=7), "results.json: status is not one of"),
    "results ended text": (results(ended="tomorrow"), "results.json: ended is not a time"),
    "results classes differ": (results(classes=["a", "b", "c"]), "results.json: classes do not match"),
    "results deeply nested": (content("results.json", "[" * 100_000), "results.json: not JSON"),
    "results empty": (content("results.json", ""), "results.json: not JSON"),
}
