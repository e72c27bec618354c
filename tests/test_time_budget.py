"""A time budget (--minutes): the schedule is sized from the first steps' speed and the run ends on time."""

import json

import pytest
import torch.nn as nn

from classroom import data, training
from classroom.__main__ import main
from classroom.config import ConfigError, TrainConfig
from classroom.data import make_shapes
from classroom.training import BatchEnd, EpochEnd, RunEnd, plan_steps, train

BUDGETED = TrainConfig(
    model="net", batch_size=32, lr=0.05, optimizer="nesterov", schedule="onecycle", warmup=0.2, epochs=3,
    log_interval=5, device="cpu", threads=1,
)  # fmt: skip


@pytest.fixture(scope="module")
def shapes():
    return make_shapes(n_train=1200, n_test=300)  # 38 steps of 32 per epoch, one test batch


class FakeClock:
    """Seconds that pass only when the model computes: a fixed cost per training step and per test batch."""

    def __init__(self, step: float, test_batch: float):
        self.now, self.step, self.test_batch = 0.0, step, test_batch

    def __call__(self) -> float:
        return self.now


class Costly(nn.Module):
    """A model whose every forward advances the fake clock, by the training or the test cost."""

    def __init__(self, inner: nn.Module, clock: FakeClock):
        super().__init__()
        self.inner, self.clock = inner, clock

    def forward(self, x):
        self.clock.now += self.clock.step if self.training else self.clock.test_batch
        return self.inner(x)


def run(config, dataset):
    events = []
    result = train(config, dataset, on_event=events.append)
    return result, events


def check_consistent(result, events):
    """The events a progress bar, an ETA and the epoch chart read agree with each other and with the end."""
    batches = [e for e in events if isinstance(e, BatchEnd)]
    epochs = [e for e in events if isinstance(e, EpochEnd)]
    assert isinstance(events[-1], RunEnd) and result.status == "finished"
    assert all(b.step <= b.steps_per_epoch and b.global_step <= b.total_steps for b in batches)
    assert batches[-1].global_step == batches[-1].total_steps == result.sized["total_steps"]  # the bar ends full
    assert [e.epoch for e in epochs] == list(range(1, len(epochs) + 1))
    assert epochs[-1].epochs == len(epochs)  # the last epoch line says how many there were, a partial last one counted
    assert batches[-1].lr == 0.0  # the onecycle decay reached 0 at the last step
    return batches, epochs


# 0.5 s steps: a probe of 20 steps, then 1-2 epochs; 3 s steps: the probe stops at a quarter of the budget (3 steps).
@pytest.mark.parametrize(("minutes", "step"), [(0.5, 0.5), (1.0, 0.5), (0.5, 3.0)])
def test_a_budget_is_filled_within_5_percent_on_a_fake_clock(minutes, step, shapes, monkeypatch):
    clock = FakeClock(step=step, test_batch=1.0)
    monkeypatch.setattr(training, "clock", clock)
    build = training.build
    monkeypatch.setattr(training, "build", lambda *a, **k: Costly(build(*a, **k), clock))
    result, events = run(BUDGETED.replace(minutes=minutes), shapes)
    batches, epochs = check_consistent(result, events)
    budget = minutes * 60
    assert result.sized["seconds"] == pytest.approx(budget, rel=0.05) and result.sized["seconds"] <= budget
    assert result.sized["step_seconds"] == pytest.approx(step)
    assert result.sized["eval_seconds"] == pytest.approx(1.0)  # the timed pass over the test set's first images
    assert f"sized to {result.sized['epochs']:g} epochs" in events[-1].message


def test_a_real_budget_of_a_few_seconds_ends_on_time(shapes):
    # Real time on a busy machine: 5 % of the budget plus 1 s for a budget this short (the probe's 20 steps alone
    # are a third of it, and one slow step or test pass is a visible share).
    result, events = run(BUDGETED.replace(minutes=0.1), shapes)
    check_consistent(result, events)
    assert abs(result.sized["seconds"] - 6.0) <= 0.05 * 6.0 + 1.0


def test_plan_steps_fits_steps_and_test_passes_in_what_is_left():
    # 100 s, nothing spent: 10 steps per epoch of 1 s each, a test pass of 5 s after each epoch and the last.
    assert plan_steps(100, 0, 0, 1.0, 5.0, 10, 0) == 65  # 6 full epochs (90 s) + 5 steps and a 7th test pass
    assert plan_steps(100, 0, 0, 1.0, 0.0, 10, 0) == 100
    assert plan_steps(100, 99, 20, 1.0, 5.0, 10, 2) == 20  # over budget: end with what is done
    assert plan_steps(10**6, 0, 0, 1e-3, 0.0, 10, 0) == 200 * 10  # at most MAX_EPOCHS epochs


def test_minutes_are_validated():
    assert TrainConfig(minutes=2.5).validate().minutes == 2.5
    for bad in (-1.0, float("nan"), float("inf"), 24 * 60 + 1, "5", True):
        with pytest.raises(ConfigError, match="minutes"):
            TrainConfig(minutes=bad).validate()
    old = TrainConfig().to_dict()
    del old["minutes"], old["cuda_graph"]
    assert TrainConfig.from_dict(old).minutes == 0.0  # a config.json from before the budget reads back


def test_the_command_line_takes_minutes(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data._cache.clear()
    argv = ["train", "--preset", "tutorial-fast", "--data", "shapes", "--minutes", "0.1", "--json", "--out", "ckpt"]
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    summary = json.loads(out[-1])
    assert summary["sized"]["minutes"] == 0.1 and summary["sized"]["total_steps"] > 0
    assert any(line.startswith("finished: sized to ") for line in out)
    assert main(["train", "--data", "shapes", "--minutes", "-1"]) == 2
    assert "minutes" in capsys.readouterr().err
