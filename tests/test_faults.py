"""Faults a classroom meets: double stops, pause then stop, out of memory, a full disk, a killed server."""

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch

from classroom import checkpoints
from classroom.config import TrainConfig
from classroom.runs import RunManager
from tests import full_disk

CONFIG = TrainConfig(data="shapes", batch_size=64, lr=0.05, epochs=20, log_interval=2, device="cpu")
ROOT = Path(__file__).resolve().parent.parent


def wait_for(predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def started(manager, run_id):
    return lambda: manager.get(run_id).last_batch is not None


def test_stop_twice_and_pause_then_stop(tmp_path):
    manager = RunManager(tmp_path)
    a = manager.submit(CONFIG)
    wait_for(started(manager, a))
    manager.stop(a)
    manager.stop(a)
    assert manager.wait(a, 60).status == "stopped"
    b = manager.submit(CONFIG)
    wait_for(started(manager, b))
    manager.pause(b)
    manager.stop(b)
    assert manager.wait(b, 60).status == "stopped"
    manager.resume(b)  # resuming an ended run changes nothing
    assert manager.get(b).status == "stopped"


def test_stop_a_queued_run_and_the_next_one_still_starts(tmp_path):
    manager = RunManager(tmp_path, max_per_device=1)
    first, second, third = (manager.submit(CONFIG.replace(epochs=1)) for _ in range(3))
    assert manager.get(second).queue_position in (1, 2)
    manager.stop(second)
    assert manager.get(second).status == "stopped"
    assert manager.wait(third, 120).status == "finished"
    assert manager.wait(first, 120).status == "finished"


def test_no_threads_are_left_behind_when_runs_end(tmp_path):
    before = threading.active_count()
    manager = RunManager(tmp_path, max_per_device=2)
    ids = [manager.submit(CONFIG.replace(epochs=1, max_steps=3)) for _ in range(4)]
    for run_id in ids:
        assert manager.wait(run_id, 120).status == "finished"
    wait_for(lambda: threading.active_count() <= before, timeout=10)


def test_out_of_memory_fails_the_run_with_a_message_and_frees_the_slot(tmp_path, monkeypatch):
    from classroom import models

    real_build = models.build

    class Exploding(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    def build(name, num_classes=10, generator=None):
        return Exploding() if name == "wide-net" else real_build(name, num_classes, generator)

    monkeypatch.setattr("classroom.training.build", build)
    manager = RunManager(tmp_path, max_per_device=1)
    doomed = manager.submit(CONFIG.replace(model="wide-net"))
    after = manager.submit(CONFIG.replace(epochs=1, max_steps=2))
    failed = manager.wait(doomed, 60)
    assert failed.status == "failed" and "out of memory" in failed.message and "lower the batch size" in failed.message
    assert manager.wait(after, 60).status == "finished"  # the device slot was given back


def test_a_full_disk_keeps_the_run_in_memory_with_a_clear_message(tmp_path, monkeypatch):
    manager = RunManager(tmp_path)
    real_open = open

    def full_disk_open(path, mode="r", *args, **kwargs):
        if "metrics.jsonl" in str(path) and "a" in mode:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", full_disk_open)
    snapshot = manager.wait(manager.submit(CONFIG.replace(epochs=1)), 120)
    assert snapshot.status == "finished" and len(snapshot.epochs) == 1 and snapshot.losses
    assert not snapshot.saved and "could not be saved: disk full" in snapshot.message


def test_a_disk_full_at_the_end_keeps_the_trained_model_downloadable_from_memory(tmp_path, monkeypatch):
    manager = RunManager(tmp_path)
    run_id = manager.submit(CONFIG.replace(epochs=1))
    wait_for(started(manager, run_id))
    manager.pause(run_id)
    full_disk.fill(monkeypatch, tmp_path)  # from here on every write fails, torch.save's with its RuntimeError
    manager.resume(run_id)
    snapshot = manager.wait(run_id, 120)
    assert snapshot.status == "finished" and len(snapshot.epochs) == 1
    assert not snapshot.saved and "could not be saved: disk full" in snapshot.message
    assert sorted(p.name for p in (tmp_path / run_id).iterdir()) == ["config.json", "metrics.jsonl"]  # no .tmp left
    assert manager.checkpoint_path(run_id) is None
    model, info = checkpoints.load(manager.checkpoint(run_id))  # the download, from memory
    evaluation, _ = manager.evaluation(run_id)
    assert info["metrics"]["test_accuracy"] == evaluation.accuracy == snapshot.epochs[-1]["test_accuracy"]


def test_a_server_killed_mid_run_leaves_an_interrupted_run_with_its_metrics(tmp_path):
    script = textwrap.dedent(f"""
        import os, time
        from classroom.config import TrainConfig
        from classroom.runs import RunManager
        m = RunManager({str(tmp_path)!r})
        run_id = m.submit(TrainConfig(data="shapes", batch_size=64, lr=0.05, epochs=50, log_interval=2, device="cpu"))
        deadline = time.monotonic() + 120
        while not (m.get(run_id).epochs):
            if time.monotonic() > deadline:
                os._exit(1)  # no epoch in time: end, closing stdout, so the test's readline returns
            time.sleep(0.05)
        print(run_id, flush=True)
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        run_id = proc.stdout.readline().strip()
        assert run_id, "the child never reported a run"
        time.sleep(0.3)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        proc.kill()
    lines = (tmp_path / run_id / "metrics.jsonl").read_text().splitlines()
    with open(tmp_path / run_id / "metrics.jsonl", "a") as f:
        f.write('{"kind": "batch", "glob')  # what a crash mid-write would leave
    restarted = RunManager(tmp_path)
    snapshot = restarted.get(run_id)
    assert snapshot.status == "interrupted" and "server stopped" in snapshot.message
    assert len(snapshot.epochs) >= 1 and len(snapshot.losses) == sum(json.loads(x)["kind"] == "batch" for x in lines)
    assert json.loads((tmp_path / run_id / "results.json").read_text())["status"] == "interrupted"
    assert not list(tmp_path.rglob("*.tmp"))
    assert RunManager(tmp_path).get(run_id).status == "interrupted"  # and stays so on the next restart


@pytest.mark.parametrize("bad_id", ["../../etc/passwd", "", "20260101-000000-zzzzzz", "x" * 500])
def test_garbage_run_ids_touch_nothing(tmp_path, bad_id):
    manager = RunManager(tmp_path)
    assert manager.get(bad_id) is None
    assert manager.checkpoint_path(bad_id) is None
    assert manager.evaluation(bad_id) is None
    manager.stop(bad_id)
    manager.feature(bad_id)
    assert manager.featured is None
