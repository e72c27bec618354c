"""A run's record on disk: config.json, metrics.jsonl appended as it goes, checkpoint, results.json."""

import json
import time

import pytest

from classroom import checkpoints
from classroom.config import TrainConfig
from classroom.runs import RunManager

CONFIG = TrainConfig(data="shapes", batch_size=64, lr=0.05, epochs=3, log_interval=5, device="cpu")


def wait_for(predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_metrics_are_on_disk_while_the_run_is_going(tmp_path):
    manager = RunManager(tmp_path)
    run_id = manager.submit(CONFIG)
    wait_for(lambda: (s := manager.get(run_id)).last_batch and s.last_batch["global_step"] >= 10)
    manager.pause(run_id)
    lines = (tmp_path / run_id / "metrics.jsonl").read_text().splitlines()
    assert manager.get(run_id).status == "paused" and len(lines) >= 2
    assert all(json.loads(line)["kind"] == "batch" for line in lines[:2])
    assert not (tmp_path / run_id / "results.json").exists()
    manager.resume(run_id)
    snapshot = manager.wait(run_id, timeout=120)
    assert snapshot.status == "finished" and len(snapshot.epochs) == 3
    results = json.loads((tmp_path / run_id / "results.json").read_text())
    assert results["status"] == "finished" and results["test_accuracy"] == snapshot.epochs[-1]["test_accuracy"]
    assert results["test_accuracy"] > 0.5  # chance is 0.1; seeds 0, 1, 2 reach 0.90, 0.58, 0.92 in these 3 epochs
    saved = json.loads((tmp_path / run_id / "config.json").read_text())
    assert TrainConfig.from_dict(saved["config"]) == CONFIG
    model, info = checkpoints.load(tmp_path / run_id / "checkpoint.pt")
    assert info["metrics"]["test_accuracy"] == results["test_accuracy"]
    epochs = [json.loads(line) for line in (tmp_path / run_id / "metrics.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs if e["kind"] == "epoch"] == [1, 2, 3]
    assert not list(tmp_path.rglob("*.tmp"))


def test_an_unwritable_runs_dir_keeps_the_result_in_memory(tmp_path):
    blocked = tmp_path / "runs"
    blocked.write_text("a file where the runs folder should be")
    manager = RunManager(blocked)
    snapshot = manager.wait(manager.submit(CONFIG.replace(epochs=1)), timeout=120)
    assert snapshot.status == "finished" and not snapshot.saved
    assert "not saved to" in snapshot.message
    in_memory, _ = manager.evaluation(snapshot.id)  # the model kept in memory, evaluated again
    assert in_memory.accuracy == pytest.approx(snapshot.epochs[-1]["test_accuracy"])
