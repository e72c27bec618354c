"""RunManager: training runs in background threads, device slots with a queue, persistence under runs/.

Where a run trains is its executor's business: LocalExecutor (here: this process, one slot per device by default) or
classroom.executors.RayExecutor (a Ray cluster, CLASSROOM_EXECUTOR=ray). Either way the RunManager keeps the run's
state, controls and record, so pages, the runs page and restarts do not care where it trained."""

from __future__ import annotations

import dataclasses
import errno
import math
import os
import re
import secrets
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import torch

from classroom import budget, checkpoints, data, records
from classroom.config import ConfigError, TrainConfig
from classroom.evaluation import Evaluation, sample_indices, sample_predictions
from classroom.executors import Outcome
from classroom.remote import shown_images
from classroom.series import BatchLines, LossCurve
from classroom.training import Control, Event, RunEnd, event_dict, fresh_seed, reevaluate, resolve_device, train

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
    executor: str = ""  # where it trained: local or ray ("" for records from before executors)
    node: str = ""  # the machine: this server's host name, or the Ray node's name and address once Ray placed it
    node_id: str = ""  # Ray's id of that node (ray runs only)

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

    @property
    def planned_epochs(self) -> int:
        """The epochs this run will train: its config's, or, with a time budget, as many as the budget was sized to."""
        if self.epochs:
            return self.epochs[-1]["epochs"]
        b = self.last_batch
        if self.config.minutes and b:
            return math.ceil(b["total_steps"] / b["steps_per_epoch"])
        return self.config.epochs


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
    executor: str = ""
    node: str = ""
    node_id: str = ""


class LocalExecutor:
    """Today's runner: the run's own thread, once it holds a slot on its device (the RunManager's queue), loads the
    data in this process (decoded once, shared by every run), trains and serialises the checkpoint."""

    name, remote = "local", False

    def __init__(self):
        self.node = socket.gethostname()

    def device_for(self, config: TrainConfig) -> str:
        return str(resolve_device(config.device))

    def refusal(self, config: TrainConfig, device: str) -> str | None:
        return None  # the device slots and the queue cap are the RunManager's

    def execute(self, job: _Job) -> Outcome:
        dataset = data.load(job.config.data, job.config.data_dir, roots=job.roots)
        job.loaded(dataset.classes, dataset.label, shown_images(job.config, dataset))
        result = train(job.config, dataset, on_event=job.event, control=job.control)
        try:
            checkpoint = None
            if result.evaluation is not None:
                metrics = result.evaluation.summary() | {"train_seconds": result.train_seconds, "bf16": result.bf16}
                checkpoint = checkpoints.to_bytes(result.model, job.config, dataset.classes, metrics)
        except Exception as e:  # the run trained and evaluated: its evaluation is kept beside the failure
            return Outcome("failed", f"{type(e).__name__}: {e}", result.evaluation)
        return Outcome(result.status, result.message, result.evaluation, checkpoint, result.device)

    def close(self) -> None:
        pass


class _Job:
    """What an executor sees of a run: its settings and controls, and the RunManager's hooks for what it reports."""

    def __init__(self, manager: RunManager, run: _Run):
        self._manager, self._run = manager, run
        self.run_id, self.config, self.device, self.control = run.id, run.config, run.device, run.control
        self.roots = manager.data_roots

    def event(self, event: Event) -> None:
        self._manager._record(self._run, event)

    def loaded(self, classes: tuple, label: str, images: dict) -> None:
        """The data set is in memory where the run trains: its classes, its name, the sample images the lab shows."""
        self._manager._loaded(self._run, classes, label, images)

    def placed(self, node: str, node_id: str) -> bool:
        """Ray gave the run a machine (it leaves the queue); False when it was stopped meanwhile."""
        return self._manager._placed(self._run, node, node_id)

    def cancelled(self) -> bool:
        """Stopped while it waited for Ray to place it."""
        return self._run.status != "queued"


def executor_from_environment():
    """CLASSROOM_EXECUTOR: local (unset) or ray; anything else is refused at start rather than guessed."""
    name = os.environ.get("CLASSROOM_EXECUTOR", "").strip().lower() or "local"
    if name == "local":
        return LocalExecutor()
    if name == "ray":
        from classroom.executors import RayExecutor

        return RayExecutor()
    raise ValueError(f"CLASSROOM_EXECUTOR={name!r}: use local or ray")


class RunManager:
    """One per server process: accepts runs, runs N at a time per device (or hands them to Ray), keeps every record.

    executor: LocalExecutor or a RayExecutor; None picks from CLASSROOM_EXECUTOR (local when unset)."""

    def __init__(
        self, runs_dir: str | os.PathLike = "runs", max_per_device: int = 1, max_queue: int = 16,
        max_run_bytes: int | None = None, data_roots: list | None = None, executor=None,
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
        self._pending: deque[str] = deque()  # ray: runs submitted whose actor Ray has not placed yet, oldest first
        self._lock = threading.Condition()
        self.executor = executor or executor_from_environment()
        self._load_from_disk()

    # --- what pages call -------------------------------------------------------------------

    def submit(self, config: TrainConfig, owner: str | None = None) -> str:
        """Queue a run for its owner (a browser id) and return its id; ConfigError for a bad config, RunRefused when
        it cannot be taken (the owner has a run going, or the queue is full)."""
        config.validate()
        if config.seed is None:  # drawn now, so that config.json records it and the run can be repeated
            config = dataclasses.replace(config, seed=fresh_seed())
        try:
            device = self.executor.device_for(config)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        if why := self.executor.refusal(config, device):
            raise RunRefused(why)
        if why := self.memory_refusal(config, device):
            raise RunRefused(why)
        with self._lock:
            if owner is not None:
                mine = [r for r in self._runs.values() if r.owner == owner and r.status in ACTIVE]
                if mine:
                    raise RunRefused(f"you already have a run going ({mine[0].id}): stop it or let it finish first")
            waiting = self._waiting()
            if self._will_wait(config, device) and waiting >= self.max_queue:
                raise RunRefused(f"the class is busy: {waiting} runs are already waiting; try again when one ends")
            run_id = _new_id()
            while run_id in self._runs:  # two runs in the same second may draw the same id
                run_id = _new_id()
            run = _Run(run_id, config, device, owner, executor=self.executor.name, node=self.executor.node)
            self._runs[run.id] = run
            self._queue(run).append(run.id)
        meta = {"id": run.id, "device": device, "created": run.created, "executor": run.executor, "config": config.to_dict()}
        self._write_json(run, "config.json", meta)
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
                self._queue(run).remove(run.id)
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
        if device is None and self.executor.remote:
            try:
                device = self.executor.device_for(config)
            except ValueError:
                return None  # submit says why (no GPU in the cluster)
        device = device or str(resolve_device(config.device))
        limit = self.max_run_bytes
        if device.startswith("cuda") and self.executor.remote:
            return None  # the GPU is on a machine this server cannot see; an out-of-memory there fails the run, saying so
        if device.startswith("cuda"):
            limit = int(0.9 * torch.cuda.get_device_properties(torch.device(device)).total_memory)
        elif device != "cpu":
            return None  # mps shares the machine's memory in ways the estimate does not model
        return budget.refusal(config, limit) if limit else None

    def going(self) -> tuple[int, int]:
        """(runs training or loading or paused, runs waiting): the sidebar's cluster line, without snapshots."""
        with self._lock:
            statuses = [r.status for r in self._runs.values()]
        return sum(s in ACTIVE and s != "queued" for s in statuses), statuses.count("queued")

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
        """Stop every run, wait for their threads, then let the executor go (Ray: any actor left is ended)."""
        for snap in self.list():
            self.stop(snap.id)
        for run in list(self._runs.values()):
            if run.thread:
                run.thread.join(timeout)
        self.executor.close()

    def _queue(self, run: _Run) -> deque[str]:
        """The queue the run waits in: its device's here, or the one of runs Ray has not placed yet."""
        return self._pending if self.executor.remote else self._queues.setdefault(run.device, deque())

    def _will_wait(self, config: TrainConfig, device: str) -> bool:
        """Whether a run submitted now would wait: every slot of its device taken or promised to runs ahead."""
        if self.executor.remote:
            return self._ray_waiting((config, device)) > self._ray_waiting()
        return self._active.get(device, 0) + len(self._queues.get(device, ())) >= self.max_per_device

    def _waiting(self) -> int:
        """Runs queued behind full devices; a queued run whose slot is free but whose thread has not yet
        taken it is not waiting, so the count does not depend on thread scheduling."""
        if self.executor.remote:
            return self._ray_waiting()
        free = lambda device: max(0, self.max_per_device - self._active.get(device, 0))
        return sum(max(0, len(queue) - free(device)) for device, queue in self._queues.items())

    def _ray_waiting(self, new: tuple[TrainConfig, str] | None = None) -> int:
        """Unplaced Ray runs (and `new`) that the cluster has no room for, as this server counts it: its machines' CPUs
        and GPUs less what its placed runs asked, given to the unplaced ones in order. As for device slots, a run
        Ray is about to place is not waiting; an unknown cluster has room for all (Ray's scheduler queues them)."""
        capacity = self.executor.capacity()
        if capacity is None:
            return 0
        cpus, gpus = capacity
        for run in self._runs.values():
            if run.status in ACTIVE and run.status != "queued" and run.executor == self.executor.name:
                ask = self.executor.resources(run.config, run.device.split(":")[0])
                cpus, gpus = cpus - ask["num_cpus"], gpus - ask["num_gpus"]
        asks = [(self._runs[i].config, self._runs[i].device) for i in self._pending] + ([new] if new else [])
        waiting = 0
        for config, device in asks:
            ask = self.executor.resources(config, device)
            if ask["num_cpus"] <= cpus and ask["num_gpus"] <= gpus:
                cpus, gpus = cpus - ask["num_cpus"], gpus - ask["num_gpus"]
            else:
                waiting += 1
        return waiting

    # --- the worker thread -----------------------------------------------------------------

    def _work(self, run: _Run) -> None:
        remote = self.executor.remote
        if not remote:  # Ray's scheduler is a Ray run's queue: it waits for a machine inside the executor
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
            outcome = self.executor.execute(_Job(self, run))
            if outcome is None:
                return  # a Ray run stopped before it was placed: stop() has recorded it
            run.evaluation = outcome.evaluation
            if outcome.checkpoint is not None:
                self._save_checkpoint(run, outcome.checkpoint)
            status, message = outcome.status, outcome.message
            if remote and outcome.device:
                run.device = outcome.device  # the device as that machine names it (cuda:0: the GPU Ray gave the run)
        except (data.DataError, ConfigError, ValueError) as e:
            status, message = "failed", str(e)
        except Exception as e:  # anything else still ends the run with a message and frees the slot
            status, message = "failed", f"{type(e).__name__}: {e}"
        outcome = None  # the evaluation and checkpoint bytes: the run keeps what it needs
        if run.device.startswith("cuda") and not remote:
            torch.cuda.empty_cache()  # hand the freed blocks back, for the next run and the lessons' timings
        with self._lock:
            if remote:
                if run.id in self._pending:  # it failed before Ray placed it (the cluster went away)
                    self._pending.remove(run.id)
            else:
                self._active[run.device] -= 1
            self._finish(run, status, message)
            self._lock.notify_all()

    def _loaded(self, run: _Run, classes: tuple, label: str, images: dict) -> None:
        with self._lock:
            run.classes, run.data_label, run.sample_images = classes, label, images
            if run.status == "loading":
                run.status = "running"

    def _placed(self, run: _Run, node: str, node_id: str) -> bool:
        with self._lock:
            if run.status != "queued":
                return False
            self._pending.remove(run.id)
            run.status, run.started, run.node, run.node_id = "loading", time.time(), node, node_id
            self._lock.notify_all()
            return True

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
        if run.executor:  # where it ran; records from before executors say nothing
            results |= {"executor": run.executor, "node": run.node, "device": run.device}
            results |= {"node_id": run.node_id} if run.node_id else {}
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
        queue = self._pending if self.executor.remote else self._queues.get(run.device, ())
        position = list(queue).index(run.id) + 1 if run.status == "queued" and run.id in queue else 0
        device = f"{run.device} on {run.node}" if run.executor == "ray" and run.node else run.device
        last = run.epochs[-1] if run.epochs else {}
        samples, samples_epoch = last.get("samples", []), last.get("epoch", 0)
        if run.samples and run.samples != samples:  # the final evaluation saw another model: a stopped run's, mid-epoch
            samples, samples_epoch = run.samples, 0
        return Snapshot(
            run.id, run.config, run.status, message, device, run.created, run.started, run.ended, position,
            tuple(run.losses), run.last_batch, tuple(run.epochs), tuple(run.classes), run.data_label,
            run.id == self.featured,
            run.evaluation.accuracy if run.evaluation is not None else run.test_accuracy, run.owner, run.saved,
            tuple(samples), samples_epoch if samples else 0, run.executor, run.node, run.node_id,
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
    run.samples, run.executor, run.node = record.samples, record.executor, record.node
    return run


def _new_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def _try(fn):
    try:
        return fn()
    except (data.DataError, checkpoints.CheckpointError, OSError):
        return None
