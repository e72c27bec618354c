"""RunManager: training runs in background threads, device slots with a queue, persistence under runs/."""

from __future__ import annotations

import json
import os
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import torch

from classroom import checkpoints, data
from classroom.config import ConfigError, TrainConfig
from classroom.evaluation import Evaluation, evaluate
from classroom.training import Control, Event, RunEnd, event_dict, resolve_device, train

ACTIVE = ("queued", "loading", "running", "paused")
ENDED = ("finished", "stopped", "failed", "interrupted")
RUN_ID = re.compile(r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{6}$")


class RunRefused(RuntimeError):
    """A run that was not accepted: the class is busy, or this session already has one going."""


@dataclass(frozen=True)
class Snapshot:
    """A consistent copy of one run's state, safe to read from any thread."""

    id: str
    config: TrainConfig
    status: str  # queued | loading | running | paused | finished | stopped | failed | interrupted
    message: str
    device: str
    created: float
    started: float | None
    ended: float | None
    queue_position: int  # 1 = next to start; 0 when not queued
    losses: tuple[tuple[int, float], ...]  # (global step, mean loss over the interval)
    last_batch: dict | None
    epochs: tuple[dict, ...]
    classes: tuple[str, ...]
    data_label: str
    featured: bool = False
    session: str | None = None
    saved: bool = True  # False when runs/ could not be written: the results live in memory only

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def progress(self) -> float:
        """Fraction of training steps done."""
        if self.status == "finished":
            return 1.0
        b = self.last_batch
        return b["global_step"] / b["total_steps"] if b else 0.0


@dataclass
class _Run:
    id: str
    config: TrainConfig
    device: str
    session: str | None
    created: float = field(default_factory=time.time)
    status: str = "queued"
    message: str = ""
    started: float | None = None
    ended: float | None = None
    losses: list = field(default_factory=list)
    last_batch: dict | None = None
    epochs: list = field(default_factory=list)
    classes: tuple = ()
    data_label: str = ""
    control: Control = field(default_factory=Control)
    evaluation: Evaluation | None = None
    saved: bool = True
    save_error: str = ""  # why runs/ could not be written, shown beside the run's own message
    thread: threading.Thread | None = None


class RunManager:
    """One per server process: accepts runs, runs N at a time per device, keeps every run's record."""

    def __init__(self, runs_dir: str | os.PathLike = "runs", max_per_device: int = 1, max_queue: int = 16):
        self.runs_dir = Path(runs_dir)
        self.max_per_device = max(1, max_per_device)
        self.max_queue = max(0, max_queue)
        self.featured: str | None = None
        self._runs: dict[str, _Run] = {}
        self._queues: dict[str, deque[str]] = {}
        self._active: dict[str, int] = {}
        self._lock = threading.Condition()
        self._load_from_disk()

    # --- what pages call -------------------------------------------------------------------

    def submit(self, config: TrainConfig, session: str | None = None) -> str:
        """Queue a run and return its id; ConfigError for a bad config, RunRefused when it cannot be taken."""
        config.validate()
        try:
            device = str(resolve_device(config.device))
        except ValueError as e:
            raise ConfigError(str(e)) from None
        with self._lock:
            if session is not None:
                mine = [r for r in self._runs.values() if r.session == session and r.status in ACTIVE]
                if mine:
                    raise RunRefused(f"you already have a run going ({mine[0].id}): stop it or let it finish first")
            waiting = self._waiting()
            if self._will_wait(device) and waiting >= self.max_queue:
                raise RunRefused(f"the class is busy: {waiting} runs are already waiting; try again when one ends")
            run_id = _new_id()
            while run_id in self._runs:  # two runs in the same second may draw the same id
                run_id = _new_id()
            run = _Run(run_id, config, device, session)
            self._runs[run.id] = run
            self._queues.setdefault(device, deque()).append(run.id)
        self._write_json(run, "config.json", {"id": run.id, "device": device, "created": run.created, "config": config.to_dict()})
        run.thread = threading.Thread(target=self._work, args=(run,), name=f"run-{run.id}", daemon=True)
        run.thread.start()
        return run.id

    def stop(self, run_id: str) -> None:
        """Stop a running or paused run, or take a queued one out of the queue."""
        with self._lock:
            run = self._runs.get(run_id)
            if run is None or run.status not in ACTIVE:
                return
            run.control.stop()
            if run.status == "queued":
                self._queues[run.device].remove(run.id)
                self._finish(run, "stopped", "stopped before it started")
            self._lock.notify_all()

    def pause(self, run_id: str) -> None:
        with self._lock:
            run = self._runs.get(run_id)
            if run and run.status == "running":
                run.control.pause()
                run.status = "paused"

    def resume(self, run_id: str) -> None:
        with self._lock:
            run = self._runs.get(run_id)
            if run and run.status == "paused":
                run.control.resume()
                run.status = "running"

    def get(self, run_id: str) -> Snapshot | None:
        """The run's current state, or None for an unknown id."""
        with self._lock:
            run = self._runs.get(run_id)
            return self._snapshot(run) if run else None

    def list(self) -> list[Snapshot]:
        """Every run this server knows, newest first."""
        with self._lock:
            return sorted((self._snapshot(r) for r in self._runs.values()), key=lambda s: s.created, reverse=True)

    def active_run(self, session: str) -> Snapshot | None:
        """This session's queued, loading, running or paused run."""
        with self._lock:
            for run in self._runs.values():
                if run.session == session and run.status in ACTIVE:
                    return self._snapshot(run)
        return None

    def feature(self, run_id: str | None) -> None:
        """Show this run on every session's lab page (None clears it)."""
        with self._lock:
            self.featured = run_id if run_id in self._runs else None

    def checkpoint_path(self, run_id: str) -> Path | None:
        """The saved checkpoint of an ended run, if there is one."""
        if not RUN_ID.match(run_id or ""):
            return None
        path = self.runs_dir / run_id / "checkpoint.pt"
        return path if path.is_file() else None

    def evaluation(self, run_id: str) -> tuple[Evaluation, data.Dataset] | None:
        """The final test-set evaluation and its data set; recomputed from the checkpoint after a restart."""
        with self._lock:
            run = self._runs.get(run_id)
        if run is None:
            return None
        dataset = _try(lambda: data.load(run.config.data, run.config.data_dir))
        if dataset is None:
            return None
        if run.evaluation is None and (path := self.checkpoint_path(run_id)):
            loaded = _try(lambda: checkpoints.load(path))
            if loaded:
                model, _ = loaded
                c = run.config
                run.evaluation = evaluate(model, dataset.test_x, dataset.test_y, dataset.classes, c.mean, c.std, tta=c.tta)
        return (run.evaluation, dataset) if run.evaluation is not None else None

    def wait(self, run_id: str, timeout: float | None = None) -> Snapshot | None:
        """Block until the run has ended (for the CLI and tests)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while (run := self._runs.get(run_id)) and run.status in ACTIVE:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._lock.wait(left)
            return self._snapshot(run) if run else None

    def shutdown(self, timeout: float = 30) -> None:
        """Stop every run and wait for their threads."""
        for snap in self.list():
            self.stop(snap.id)
        for run in list(self._runs.values()):
            if run.thread:
                run.thread.join(timeout)

    def _will_wait(self, device: str) -> bool:
        """Whether a run submitted now would wait: every slot of its device taken or promised to runs ahead."""
        return self._active.get(device, 0) + len(self._queues.get(device, ())) >= self.max_per_device

    def _waiting(self) -> int:
        """Runs queued behind full devices; a queued run whose slot is free but whose thread has not yet
        taken it is not waiting, so the count does not depend on thread scheduling."""
        free = lambda device: max(0, self.max_per_device - self._active.get(device, 0))
        return sum(max(0, len(queue) - free(device)) for device, queue in self._queues.items())

    # --- the worker thread -----------------------------------------------------------------

    def _work(self, run: _Run) -> None:
        with self._lock:  # wait for a slot on the device, first come first served
            queue = self._queues[run.device]
            while run.status == "queued" and not (
                queue and queue[0] == run.id and self._active.get(run.device, 0) < self.max_per_device
            ):
                self._lock.wait()
            if run.status != "queued":
                return  # stopped while waiting
            queue.popleft()
            self._active[run.device] = self._active.get(run.device, 0) + 1
            run.status, run.started = "loading", time.time()
            self._lock.notify_all()
        try:
            dataset = data.load(run.config.data, run.config.data_dir)
            with self._lock:
                run.classes, run.data_label = dataset.classes, dataset.label
                if run.status == "loading":
                    run.status = "running"
            result = train(run.config, dataset, on_event=lambda e: self._record(run, e), control=run.control)
            run.evaluation = result.evaluation
            if result.evaluation is not None:
                metrics = result.evaluation.summary() | {"train_seconds": result.train_seconds}
                self._persist(
                    run,
                    lambda: checkpoints.save(
                        self.runs_dir / run.id / "checkpoint.pt", result.model, run.config, dataset.classes, metrics
                    ),
                )
            status, message = result.status, result.message
        except (data.DataError, ConfigError, ValueError) as e:
            status, message = "failed", str(e)
        except Exception as e:  # anything else still ends the run with a message and frees the slot
            status, message = "failed", f"{type(e).__name__}: {e}"
        result = None  # the model and its optimizer state: let their device memory go before the slot opens
        if run.device.startswith("cuda"):
            torch.cuda.empty_cache()  # hand the freed blocks back, for the next run and the lessons' timings
        with self._lock:
            self._active[run.device] -= 1
            self._finish(run, status, message)
            self._lock.notify_all()

    def _record(self, run: _Run, event: Event) -> None:
        d = event_dict(event)
        with self._lock:
            if d["kind"] == "batch":
                run.last_batch = d
                run.losses.append((d["global_step"], d["loss"]))
            elif d["kind"] == "epoch":
                run.epochs.append(d)
        if not isinstance(event, RunEnd):
            self._append_metric(run, d)

    def _finish(self, run: _Run, status: str, message: str) -> None:
        run.status, run.message, run.ended = status, message, time.time()
        results = {
            "status": status,
            "message": message,
            "ended": run.ended,
            "started": run.started,
            "classes": list(run.classes),
            "data_label": run.data_label,
        }
        if run.evaluation is not None:
            results |= run.evaluation.summary()
        if run.epochs:
            results["train_seconds"] = run.epochs[-1]["train_seconds"]
        self._write_json(run, "results.json", results)

    # --- persistence -----------------------------------------------------------------------

    def _persist(self, run: _Run, write) -> None:
        try:
            write()
        except OSError as e:
            run.saved = False
            run.save_error = run.save_error or f"not saved to {self.runs_dir}: {e.strerror or e}"

    def _write_json(self, run: _Run, name: str, value: dict) -> None:
        def write():
            folder = self.runs_dir / run.id
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / (name + ".tmp")
            tmp.write_text(json.dumps(value, indent=1))
            os.replace(tmp, folder / name)  # readers see the old file or the new one, never half

        self._persist(run, write)

    def _append_metric(self, run: _Run, event: dict) -> None:
        if not run.saved:
            return

        def write():
            with open(self.runs_dir / run.id / "metrics.jsonl", "a") as f:
                f.write(json.dumps(event) + "\n")  # one write per line: a crash loses at most the last line

        self._persist(run, write)

    def _load_from_disk(self) -> None:
        if not self.runs_dir.is_dir():
            return
        for folder in sorted(self.runs_dir.iterdir()):
            if folder.name in self._runs or not RUN_ID.match(folder.name):
                continue
            run = _read_run(folder)
            if run is None:
                continue
            if run.status in ACTIVE:  # it was going when the last server died
                run.status, run.message = "interrupted", "the server stopped while this run was going"
                run.ended = run.ended or time.time()
                self._finish(run, run.status, run.message)
            self._runs[run.id] = run

    def _snapshot(self, run: _Run) -> Snapshot:
        message = " ".join(filter(None, (run.message, run.save_error and f"({run.save_error})")))
        queue = self._queues.get(run.device, ())
        position = list(queue).index(run.id) + 1 if run.status == "queued" and run.id in queue else 0
        return Snapshot(
            run.id, run.config, run.status, message, run.device, run.created, run.started, run.ended, position,
            tuple(run.losses), run.last_batch, tuple(run.epochs), tuple(run.classes), run.data_label,
            run.id == self.featured, run.session, run.saved,
        )  # fmt: skip


def _read_run(folder: Path) -> _Run | None:
    """A run's record from its folder; None when even config.json is unreadable."""
    try:
        meta = json.loads((folder / "config.json").read_text())
        run = _Run(meta["id"], TrainConfig.from_dict(meta["config"]), meta["device"], None, created=meta["created"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    run.status = "running"  # until results.json says otherwise
    try:
        with open(folder / "metrics.jsonl", encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    event = json.loads(line)
                    if event["kind"] == "batch":
                        run.losses.append((int(event["global_step"]), float(event["loss"])))
                        run.last_batch = event
                    elif event["kind"] == "epoch":
                        run.classes = tuple(event["per_class_accuracy"])  # for a run that never wrote results.json
                        run.epochs.append(event)
                except (ValueError, KeyError, TypeError):
                    break  # a line cut off by a crash (or damaged): keep everything before it
    except OSError:
        pass
    run.data_label = run.config.data
    try:
        results = json.loads((folder / "results.json").read_text())
        if results["status"] in ENDED:  # anything else: treat as cut off
            run.status, run.message = results["status"], str(results.get("message", ""))
            run.started, run.ended = results.get("started"), results.get("ended")
            run.classes = tuple(results.get("classes") or run.classes)
            run.data_label = results.get("data_label") or run.data_label
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return run


def _new_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def _try(fn):
    try:
        return fn()
    except (data.DataError, checkpoints.CheckpointError, OSError):
        return None
