"""A long run reporting every step stays a short series: in the Snapshot, in metrics.jsonl, on the chart."""

from __future__ import annotations

import json
import math
import statistics
import time

import numpy as np
import pytest

from classroom import runs
from classroom.config import TrainConfig
from classroom.runs import RunManager
from classroom.training import BatchEnd, EpochEnd
from ui import charts

EPOCHS, STEPS = 200, 250  # a loss report every step: 50,000 reports
CONFIG = TrainConfig(data="shapes", batch_size=1, epochs=EPOCHS, log_interval=1, device="cpu")
RUN_ID = "20260101-120000-abc123"


def loss_at(step: int) -> float:
    """The simulated training loss of one step: falling, and noisy."""
    return 2.3 * math.exp(-step / 10_000) + 0.2 * math.sin(step * 1.7)


def long_run(manager: RunManager) -> None:
    """Feed the manager's event recorder a whole run's events, as the trainer would emit them (no training)."""
    run = runs._Run(RUN_ID, CONFIG, "cpu", None)
    manager._runs[RUN_ID] = run
    manager._write_json(run, "config.json", {"id": RUN_ID, "device": "cpu", "created": run.created, "config": CONFIG.to_dict()})
    total, per_class, confusion = EPOCHS * STEPS, {"a": 0.5, "b": 0.5}, [[5, 5], [5, 5]]
    for epoch in range(1, EPOCHS + 1):
        for step in range(1, STEPS + 1):
            global_step = (epoch - 1) * STEPS + step
            manager._record(run, BatchEnd(epoch, step, STEPS, global_step, total, loss_at(global_step), 0.001, 500.0, 1.0, 1.0))
        manager._record(run, EpochEnd(epoch, EPOCHS, 1.0, 0.5, 1.0, 0.5, per_class, confusion, 1.0, float(epoch)))
    with manager._lock:
        manager._finish(run, "finished", "")


def assert_faithful(points) -> None:
    """Every point is the mean loss over the steps since the point before it: thinned, never distorted."""
    steps = np.array([s for s, _ in points])
    assert np.all(np.diff(steps) > 0) and steps[-1] == EPOCHS * STEPS
    raw = np.cumsum([0.0] + [loss_at(s) for s in range(1, EPOCHS * STEPS + 1)])
    starts = np.concatenate([[0], steps[:-1]])
    expected = (raw[steps] - raw[starts]) / (steps - starts)
    assert np.allclose([v for _, v in points], expected, rtol=1e-9, atol=1e-12)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """(runs folder, the live snapshot) of one simulated long run."""
    folder = tmp_path_factory.mktemp("runs")
    manager = RunManager(folder)
    long_run(manager)
    return folder, manager.get(RUN_ID)


def test_the_snapshot_keeps_the_recent_stretch_and_an_even_history(finished):
    _, snap = finished
    assert len(snap.losses) <= 2000
    assert snap.losses[-500:] == tuple((s, loss_at(s)) for s in range(EPOCHS * STEPS - 499, EPOCHS * STEPS + 1))
    gaps = np.diff([s for s, _ in snap.losses[:-501]])  # the merged history, before the pending point
    assert gaps.max() == gaps.min()  # the whole run at one resolution, its start as fine as its middle
    assert_faithful(snap.losses)


def test_metrics_jsonl_holds_a_bounded_faithful_series_and_every_epoch(finished):
    folder, _ = finished
    lines = [json.loads(line) for line in (folder / RUN_ID / "metrics.jsonl").read_text().splitlines()]
    batches = [e for e in lines if e["kind"] == "batch"]
    assert len(batches) <= 2000 and [e["epoch"] for e in lines if e["kind"] == "epoch"] == list(range(1, EPOCHS + 1))
    assert {e["epoch"] for e in batches if e["step"] == STEPS} == set(range(1, EPOCHS + 1))  # every epoch's last report
    assert_faithful([(e["global_step"], e["loss"]) for e in batches])


def test_a_restarted_server_draws_the_same_curve_from_disk(finished):
    folder, snap = finished
    again = RunManager(folder).get(RUN_ID)
    assert again.status == "finished" and len(again.epochs) == EPOCHS and len(again.losses) <= 2000
    assert_faithful(again.losses)


def test_the_loss_chart_of_a_long_run_builds_quickly(finished):
    _, snap = finished
    charts.loss_figure(snap)  # the first build pays for plotly's imports
    seconds = []
    for _ in range(7):
        start = time.perf_counter()
        figure = charts.loss_figure(snap)
        seconds.append(time.perf_counter() - start)
    assert statistics.median(seconds) < 0.05
    assert len(figure.data[0].x) == len(snap.losses)
