"""RunManager: training runs in background threads, device slots with a queue, persistence under runs/."""

from __future__ import annotations

import dataclasses
import errno
import os
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import torch

from classroom import budget, checkpoints, data, records
from classroom.config import ConfigError, TrainConfig
from classroom.evaluation import Evaluation, sample_indices, sample_predictions
from classroom.series import BatchLines, LossCurve
from classroom.training import Control, Event, RunEnd, evaluation_limit, event_dict, fresh_seed, reevaluate, resolve_device, train

ACTIVE = ("queued", "loading", "running", "paused")
ENDED = (*records.ENDED, "damaged")  # damaged: a record on disk that cannot be trusted, shown with the reason
RUN_ID = re.compile(r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{6}$")


class RunRefused(RuntimeError):
    """A run that was not accepted: the class is busy, or this student already has one going."""


class NotYours(RunRefused):
    """A control (pause, resume, stop) asked by someone who may not use it on this run."""


@dataclass(frozen=True)
class Snapshot:
    """A consistent copy of one run's state, safe to read from any thread."""

    id: str
    config: TrainConfig
    status: str  # queued | loading | running | paused | finished | stopped | failed | interrupted | damaged
    message: str
    device: str
    created: float
    started: float | None
    ended: float | None
    queue_position: int  # 1 = next to start; 0 when not queued
    losses: tuple[tuple[int, float], ...]  # (global step, mean loss over the interval); at most 2000, older ones merged
    last_batch: dict | None
    epochs: tuple[dict, ...]
    classes: tuple[str, ...]
    data_label: str
    featured: bool = False
    test_accuracy: float | None = None  # of the final evaluation, once the run has ended with one
    owner: str | None = None  # the browser that started it; None for runs read back from disk
    saved: bool = True  # False when runs/ could not be written: the results live in memory only
    # The latest predictions on the run's fixed sample images (evaluation.sample_predictions), and the epoch after which
    # the model made them; 0 when it was evaluated mid-epoch, as a run stopped by request is.
    samples: tuple[dict, ...] = ()
    samples_epoch: int = 0

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
    owner: str | None
    created: float = field(default_factory=time.time)
    status: str = "queued"
    message: str = ""
    started: float | None = None
    ended: float | None = None
    losses: LossCurve = field(default_factory=LossCurve)
    last_batch: dict | None = None
    epochs: list = field(default_factory=list)
    classes: tuple = ()
    data_label: str = ""
    control: Control = field(default_factory=Control)
    evaluation: Evaluation | None = None
    saved: bool = True
    save_error: str = ""  # why runs/ could not be written, shown beside the run's own message
    checkpoint: bytes | None = None  # the trained checkpoint when checkpoint.pt could not be written
    test_accuracy: float | None = None  # the final evaluation's, as results.json holds it
    samples: list = field(default_factory=list)  # the final evaluation's sample predictions, as results.json holds them
    sample_images: dict = field(default_factory=dict)  # test-set index -> uint8 [3, H, W], while this process has them
    batch_lines: BatchLines = field(default_factory=BatchLines)  # which batch reports metrics.jsonl gets
    thread: threading.Thread | None = None


class RunManager:
    """One per server process: accepts runs, runs N at a time per device, keeps every run's record."""

    def __init__(
        self, runs_dir: str | os.PathLike = "runs", max_per_device: int = 1, max_queue: int = 16,
        max_run_bytes: int | None = None, data_roots: list | None = None,
    ):  # fmt: skip
        self.runs_dir = Path(runs_dir)
        self.max_per_device = max(1, max_per_device)
        self.max_queue = max(0, max_queue)
        self.max_run_bytes = max_run_bytes  # host memory one CPU run may take (None: no limit, the command line)
        self.data_roots = data_roots  # folders whose image sets runs may read (None: any, the command line)
        self.featured: str | None = None
        self._runs: dict[str, _Run] = {}
        self._queues: dict[str, deque[str]] = {}
        self._active: dict[str, int] = {}
        self._lock = threading.Condition()
        self._load_from_disk()

    # --- what pages call -------------------------------------------------------------------

    def submit(self, config: TrainConfig, owner: str | None = None) -> str:
        """Queue a run for its owner (a browser id) and return its id; ConfigError for a bad config, RunRefused when
        it cannot be taken (the owner has a run going, or the queue is full)."""
        config.validate()
        if config.seed is None:  # drawn now, so that config.json records it and the run can be repeated
            config = dataclasses.replace(config, seed=fresh_seed())
        try:
            device = str(resolve_device(config.device))
        except ValueError as e:
            raise ConfigError(str(e)) from None
        if why := self.memory_refusal(config, device):
            raise RunRefused(why)
        with self._lock:
            if owner is not None:
                mine = [r for r in self._runs.values() if r.owner == owner and r.status in ACTIVE]
                if mine:
                    raise RunRefused(f"you already have a run going ({mine[0].id}): stop it or let it finish first")
            waiting = self._waiting()
            if self._will_wait(device) and waiting >= self.max_queue:
                raise RunRefused(f"the class is busy: {waiting} runs are already waiting; try again when one ends")
            run_id = _new_id()
            while run_id in self._runs:  # two runs in the same second may draw the same id
                run_id = _new_id()
            run = _Run(run_id, config, device, owner)
            self._runs[run.id] = run
            self._queues.setdefault(device, deque()).append(run.id)
        self._write_json(run, "config.json", {"id": run.id, "device": device, "created": run.created, "config": config.to_dict()})
        run.thread = threading.Thread(target=self._work, args=(run,), name=f"run-{run.id}", daemon=True)
        run.thread.start()
        return run.id

    # Controls: `by` is the browser asking; None is the server itself (the command line, shutdown). Only a run's
    # owner may pause, resume or stop it; the instructor may stop any run. NotYours otherwise.

    def stop(self, run_id: str, by: str | None = None, instructor: bool = False) -> None:
        """Stop a running or paused run, or take a queued one out of the queue."""
        with self._lock:
            run = self._runs.get(run_id)
            if run is None or run.status not in ACTIVE:
                return
            self._check_control(run, by, instructor, "stop")
            run.control.stop()
            if run.status == "queued":
                self._queues[run.device].remove(run.id)
                self._finish(run, "stopped", "stopped before it started")
            self._lock.notify_all()

    def pause(self, run_id: str, by: str | None = None) -> None:
        with self._lock:
            run = self._runs.get(run_id)
            if run and run.status == "running":
                self._check_control(run, by, False, "pause")
                run.control.pause()
                run.status = "paused"

    def resume(self, run_id: str, by: str | None = None) -> None:
        with self._lock:
            run = self._runs.get(run_id)
            if run and run.status == "paused":
                self._check_control(run, by, False, "resume")
                run.control.resume()
                run.status = "running"

    @staticmethod
    def may_control(snap: Snapshot | _Run, by: str | None, instructor: bool, action: str) -> bool:
        """Whether `by` may pause/resume/stop this run: its owner, the server, or the instructor for stop."""
        return by is None or by == snap.owner or (instructor and action == "stop")

    def _check_control(self, run: _Run, by: str | None, instructor: bool, action: str) -> None:
        if not self.may_control(run, by, instructor, action):
            raise NotYours(f"only the student who started run {run.id} can {action} it")

    def get(self, run_id: str) -> Snapshot | None:
        """The run's current state, or None for an unknown id."""
        with self._lock:
            run = self._runs.get(run_id)
            return self._snapshot(run) if run else None

    def list(self) -> list[Snapshot]:
        """Every run this server knows, newest first."""
        with self._lock:
            return sorted((self._snapshot(r) for r in self._runs.values()), key=lambda s: s.created, reverse=True)

    def active_run(self, owner: str) -> Snapshot | None:
        """This owner's queued, loading, running or paused run."""
        with self._lock:
            for run in self._runs.values():
                if run.owner == owner and run.status in ACTIVE:
                    return self._snapshot(run)
        return None

    def memory_refusal(self, config: TrainConfig, device: str | None = None) -> str | None:
        """Why this config would take more memory than a run may have here, or None (checked before it starts)."""
        device = device or str(resolve_device(config.device))
        limit = self.max_run_bytes
        if device.startswith("cuda"):
            limit = int(0.9 * torch.cuda.get_device_properties(torch.device(device)).total_memory)
        elif device != "cpu":
            return None  # mps shares the machine's memory in ways the estimate does not model
        return budget.refusal(config, limit) if limit else None

    def loading(self) -> set[str]:
        """The data sources runs are loading right now (every sidebar asks: no snapshots copied for it)."""
        with self._lock:
            return {r.config.data for r in self._runs.values() if r.status == "loading"}

    def latest(self, owner: str) -> Snapshot | None:
        """This owner's newest run, going or ended (a reload finds the student's run again)."""
        with self._lock:
            mine = [r for r in self._runs.values() if r.owner == owner]
            return self._snapshot(max(mine, key=lambda r: r.created)) if mine else None

    def feature(self, run_id: str | None) -> None:
        """Show this run on every session's lab page (None clears it)."""
        with self._lock:
            self.featured = run_id if run_id in self._runs else None

    def checkpoint_path(self, run_id: str) -> Path | None:
        """The saved checkpoint of an ended run, if there is one (none for a damaged record: it is not trusted)."""
        if not RUN_ID.match(run_id or ""):
            return None
        with self._lock:
            run = self._runs.get(run_id)
        if run is None or run.status == "damaged":
            return None
        path = self.runs_dir / run_id / records.CHECKPOINT
        return path if path.is_file() else None

    def checkpoint(self, run_id: str) -> bytes | None:
        """The trained checkpoint for a download: its file, or the bytes kept in memory when the file could not be written."""
        with self._lock:
            run = self._runs.get(run_id)
        if run is not None and run.checkpoint is not None:
            return run.checkpoint
        path = self.checkpoint_path(run_id)
        return _try(path.read_bytes) if path else None

    def evaluation(self, run_id: str) -> tuple[Evaluation, data.Dataset] | None:
        """The final test-set evaluation and its data set; recomputed from the checkpoint after a restart."""
        with self._lock:
            run = self._runs.get(run_id)
        if run is None or run.status == "damaged":
            return None
        dataset = _try(lambda: data.load(run.config.data, run.config.data_dir, roots=self.data_roots))
        if dataset is None:
            return None
        if run.evaluation is None and (path := self.checkpoint_path(run_id)):
            loaded = _try(lambda: checkpoints.load(path))
            if loaded:
                run.evaluation = reevaluate(*loaded, dataset)  # as the run evaluated: the numbers it recorded
        return (run.evaluation, dataset) if run.evaluation is not None else None

    def sample_images(self, run_id: str, indices: list[int]) -> dict[int, torch.Tensor]:
        """The test images (uint8 [3, H, W]) at these indices of the run's data set, those that can be had.

        A run keeps its own few in memory; a run read back from disk loads its data set once it has ended (as the
        final results do), and an image whose label there is not the recorded one is left out (the set has changed)."""
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                return {}
            found = {i: run.sample_images[i] for i in indices if i in run.sample_images}
            missing = [i for i in indices if i not in found]
            if not missing or run.status in ACTIVE or run.status == "damaged":
                return found
            recorded = [*run.samples, *(run.epochs[-1].get("samples", []) if run.epochs else [])]
            labels = {s["index"]: s["label"] for s in recorded}
        dataset = _try(lambda: data.load(run.config.data, run.config.data_dir, roots=self.data_roots))
        if dataset is None:
            return found
        fetched = {
            i: dataset.test_x[i].clone() for i in missing
            if 0 <= i < len(dataset.test_y) and int(dataset.test_y[i]) == labels.get(i)
        }  # fmt: skip
        with self._lock:
            run.sample_images.update(fetched)
        return found | fetched

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
            dataset = data.load(run.config.data, run.config.data_dir, roots=self.data_roots)
            # The images the epochs report predictions on, kept (a few kB) so the lab draws them without the data set.
            shown = sample_indices(dataset.test_y[: evaluation_limit(run.config) or None])
            with self._lock:
                run.classes, run.data_label = dataset.classes, dataset.label
                run.sample_images = {i: dataset.test_x[i].clone() for i in shown}
                if run.status == "loading":
                    run.status = "running"
            result = train(run.config, dataset, on_event=lambda e: self._record(run, e), control=run.control)
            run.evaluation = result.evaluation
            if result.evaluation is not None:
                metrics = result.evaluation.summary() | {"train_seconds": result.train_seconds, "bf16": result.bf16}
                self._save_checkpoint(run, checkpoints.to_bytes(result.model, run.config, dataset.classes, metrics))
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

    def _save_checkpoint(self, run: _Run, checkpoint: bytes) -> None:
        """Write checkpoint.pt; when that fails, keep its bytes in memory so the trained model can still be downloaded."""
        # Serialised in memory, then written like the JSON files: torch.save to a full disk fails with a RuntimeError
        # from its zip writer (no errno to say why) and leaves checkpoint.pt.tmp behind.
        if not self._persist(run, lambda: records.write_bytes(self.runs_dir / run.id / records.CHECKPOINT, checkpoint)):
            run.checkpoint = checkpoint

    def _record(self, run: _Run, event: Event) -> None:
        d = event_dict(event)
        with self._lock:
            if d["kind"] == "batch":
                run.last_batch = d
                run.losses.add(d["global_step"], d["loss"])
            elif d["kind"] == "epoch":
                run.epochs.append(d)
        if isinstance(event, RunEnd):
            return
        line = run.batch_lines.line(d) if d["kind"] == "batch" else d  # batch lines thinned, epoch lines all kept
        if line is not None:
            self._append_metric(run, line)

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
            run.samples = sample_predictions(run.evaluation, sample_indices(run.evaluation.labels))
        if run.samples:
            results["samples"] = run.samples
        if run.epochs:
            results["train_seconds"] = run.epochs[-1]["train_seconds"]
        self._write_json(run, "results.json", results)

    # --- persistence -----------------------------------------------------------------------

    def _persist(self, run: _Run, write) -> bool:
        """Run one write to the run's folder; False, with the reason kept for the run's message, when it failed."""
        if run.status == "damaged":
            return False  # a damaged record is left exactly as it was found
        try:
            write()
            return True
        except OSError as e:
            run.saved = False
            full = e.errno == errno.ENOSPC  # said plainly: the strerror of a full disk puzzles students
            run.save_error = run.save_error or (
                "could not be saved: disk full" if full else f"not saved to {self.runs_dir}: {e.strerror or e}"
            )
            return False

    def _write_json(self, run: _Run, name: str, value: dict) -> None:
        self._persist(run, lambda: records.write_json(self.runs_dir / run.id / name, value))

    def _append_metric(self, run: _Run, event: dict) -> None:
        if not run.saved:
            return  # after a failed write the log has a gap: better none than a misleading one
        self._persist(run, lambda: records.append_line(self.runs_dir / run.id / records.METRICS, event))

    def _load_from_disk(self) -> None:
        if not self.runs_dir.is_dir():
            return
        for folder in sorted(self.runs_dir.iterdir()):
            if folder.name in self._runs or not RUN_ID.match(folder.name) or folder.is_symlink():
                continue  # a link could point the interrupted run's results.json anywhere
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
        last = run.epochs[-1] if run.epochs else {}
        samples, samples_epoch = last.get("samples", []), last.get("epoch", 0)
        if run.samples and run.samples != samples:  # the final evaluation saw another model: a stopped run's, mid-epoch
            samples, samples_epoch = run.samples, 0
        return Snapshot(
            run.id, run.config, run.status, message, run.device, run.created, run.started, run.ended, position,
            tuple(run.losses), run.last_batch, tuple(run.epochs), tuple(run.classes), run.data_label,
            run.id == self.featured,
            run.evaluation.accuracy if run.evaluation is not None else run.test_accuracy, run.owner, run.saved,
            tuple(samples), samples_epoch if samples else 0,
        )  # fmt: skip


def _read_run(folder: Path) -> _Run | None:
    """A run from its folder, as records.read found it (damaged ones included); None when it holds no run."""
    record = records.read(folder)
    if record is None:
        return None
    run = _Run(record.id, record.config, record.device, None, created=record.created)
    run.status, run.message, run.started, run.ended = record.status, record.message, record.started, record.ended
    run.losses, run.last_batch, run.epochs = record.losses, record.last_batch, record.epochs
    run.classes, run.data_label, run.test_accuracy = record.classes, record.data_label, record.test_accuracy
    run.samples = record.samples
    return run


def _new_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def _try(fn):
    try:
        return fn()
    except (data.DataError, checkpoints.CheckpointError, OSError):
        return None
