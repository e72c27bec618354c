"""A run's side on a Ray worker: get the data on this node, train in a thread, keep the events for the server's polls.

Plain classes: classroom.executors makes them Ray actors (ray.remote) when the executor is ray, so importing this module
never imports ray. RemoteRun is one run, a threaded actor (max_concurrency > 1): `train` holds one thread for the whole
run while `poll`, which carries the server's pause and stop and takes the events so far, answers in another.

Ray gives every actor a process of its own, so classroom.data's per-process cache would decode a data set again for
every run (2-3 s for CIFAR-10 here). NodeData, one actor per node, decodes each set once for its node and lends it to
the node's runs through Ray's object store, read from shared memory; a run copies it (0.1 s for CIFAR-10)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import threading
from collections import OrderedDict
from pathlib import Path

import torch

from classroom import checkpoints, data
from classroom.config import ConfigError, TrainConfig
from classroom.evaluation import sample_indices
from classroom.training import Control, evaluation_limit, train

MAX_BUFFERED = 10_000  # events kept for a server that stopped polling; beyond it the oldest batch reports go


def node_label() -> str:
    """This machine as a person reads it: its host name at its address (in a container, the container's)."""
    import ray

    return f"{socket.gethostname()} at {ray.util.get_node_ip_address()}"


def shown_images(config: TrainConfig, dataset: data.Dataset) -> dict:
    """The test images the epochs report predictions on (a few kB), kept so the lab draws them without the data set."""
    shown = sample_indices(dataset.test_y[: evaluation_limit(config) or None])
    return {i: dataset.test_x[i].clone() for i in shown}


def load_on_this_node(config: TrainConfig, roots) -> data.Dataset:
    """The run's data set as this node has it: decoded once per worker process (classroom.data's cache); CIFAR-10
    downloaded once per node when it is missing here. A DataError names this node: the folder may exist elsewhere."""
    try:
        if config.data == "cifar10" and not data.cifar10_present(config.data_dir):
            with _node_lock(Path(config.data_dir) / ".cifar10-download.lock"):  # one download per node, not per run
                if not data.cifar10_present(config.data_dir):
                    data.download_cifar10(config.data_dir)
        return data.load(config.data, config.data_dir, roots=roots)
    except data.DataError as e:
        raise data.DataError(f"on {node_label()}, the machine training this run: {e}") from None
    except OSError as e:  # the data dir cannot be made or written on this node
        raise data.DataError(f"on {node_label()}, the machine training this run: {config.data_dir}: {e.strerror or e}") from None


@contextlib.contextmanager
def _node_lock(path: Path):
    """An exclusive lock on a file of this node, shared by every worker process here."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class NodeData:
    """The data sets of one node, decoded once (by this actor's process) and put in Ray's object store for its runs."""

    def __init__(self):
        self._lock = threading.Lock()
        self._sets: OrderedDict[tuple, tuple[dict, object]] = OrderedDict()  # (source, data_dir) -> (about, arrays' ref)

    def get(self, config: TrainConfig, roots) -> tuple[dict, object]:
        """(name, classes, synthetic) and the ref of the set's arrays; DataError naming this node when it lacks them."""
        import ray

        key = (config.data, config.data_dir)
        with self._lock:
            if key in self._sets:
                self._sets.move_to_end(key)
                return self._sets[key]
        dataset = load_on_this_node(config, roots)  # classroom.data's cache: one decode however many runs ask at once
        about = {"name": dataset.name, "classes": dataset.classes, "synthetic": dataset.synthetic}
        arrays = {k: getattr(dataset, k).numpy() for k in ("train_x", "train_y", "test_x", "test_y")}
        entry = (about, ray.put(arrays))
        with self._lock:
            self._sets[key] = entry
            while len(self._sets) > data.MAX_DATASETS:  # as many as a process keeps; a run holding one keeps it alive
                self._sets.popitem(last=False)
        return entry


def from_node(node_data, config: TrainConfig, roots) -> data.Dataset:
    """The run's data set through its node's NodeData (None, or a NodeData gone: loaded in this process instead)."""
    import ray

    if node_data is not None:
        try:
            about, ref = ray.get(node_data.get.remote(config, roots))
            arrays = ray.get(ref)  # numpy views of the node's shared memory, read-only: copied, so nothing can write there
            tensors = {k: torch.from_numpy(a.copy()) for k, a in arrays.items()}
            return data.Dataset(about["name"], tuple(about["classes"]), synthetic=about["synthetic"], **tensors)
        except ray.exceptions.RayTaskError as e:
            if isinstance(e.cause, data.DataError):
                raise e.cause from None  # the node lacks the set: said once, naming the node
        except ray.exceptions.RayError:
            pass  # the node's NodeData went away (its server left): decode here, as a process does alone
    return load_on_this_node(config, roots)


class RemoteRun:
    """One run in a Ray actor: `where`, then `train` (returns at the run's end) beside repeated `poll`s."""

    def __init__(self):
        self.control = Control()
        self._lock = threading.Lock()
        self._items: list[tuple[int, str, object]] = []  # (number, "loaded" or "event", what), not yet taken
        self._next = 0  # the number the next item gets

    def where(self) -> dict:
        """The node and process this actor landed on: answering at all means Ray has placed the run."""
        import ray

        return {"node_id": ray.get_runtime_context().get_node_id(), "node": node_label(), "pid": os.getpid()}

    def poll(self, since: int, paused: bool, stopped: bool) -> list:
        """Apply the server's controls, forget the items it has (numbered below `since`), return the rest."""
        if stopped:
            self.control.stop()
        elif paused:
            self.control.pause()
        else:
            self.control.resume()
        with self._lock:
            self._items = [item for item in self._items if item[0] >= since]
            return list(self._items)

    def train(self, config: TrainConfig, device: str, data_dir: str, roots, node_data=None) -> dict:
        """Get the data, train on `device` (cpu, or cuda: the GPU Ray gave this actor), serialise the checkpoint here.

        data_dir: the server's data folder as an absolute path, the same path on every machine of the class.
        node_data: this node's NodeData actor. The model never crosses the wire: the server gets the checkpoint's
        bytes and the final evaluation."""
        try:
            here = config.replace(device=device, data_dir=data_dir)
            dataset = from_node(node_data, here, roots)
            self._add("loaded", {"classes": dataset.classes, "label": dataset.label, "images": shown_images(here, dataset)})
            result = train(here, dataset, on_event=lambda e: self._add("event", e), control=self.control)
            checkpoint = None
            if result.evaluation is not None:
                metrics = result.evaluation.summary() | {"train_seconds": result.train_seconds, "bf16": result.bf16}
                checkpoint = checkpoints.to_bytes(result.model, config, dataset.classes, metrics)  # the config as submitted
            status, message, evaluation, trained_on = result.status, result.message, result.evaluation, result.device
        except (data.DataError, ConfigError, ValueError) as e:
            status, message, evaluation, checkpoint, trained_on = "failed", str(e), None, None, device
        except Exception as e:  # anything else ends the run with a message, as the local runner does
            status, message, evaluation, checkpoint, trained_on = "failed", f"{type(e).__name__}: {e}", None, None, device
        return {"status": status, "message": message, "evaluation": evaluation, "checkpoint": checkpoint, "device": trained_on}

    def _add(self, kind: str, what) -> None:
        with self._lock:
            self._items.append((self._next, kind, what))
            self._next += 1
            if len(self._items) > MAX_BUFFERED:  # a server gone quiet: memory stays bounded, epoch lines and the end kept
                oldest = next((i for i, (_, k, e) in enumerate(self._items) if k == "event" and e.kind == "batch"), None)
                if oldest is not None:
                    del self._items[oldest]
