"""The time-left estimate follows the recent pace: a slowdown or a speedup shows within its window (a fake clock)."""

from types import SimpleNamespace

import pytest

from classroom import training
from classroom.config import TrainConfig
from classroom.training import BatchEnd, EpochEnd, Pace, train


def test_pace_is_the_rate_over_the_last_window_of_seconds():
    pace = Pace(window=5.0)  # times in eighths of a second below: sums exact in binary, so the checks can be exact
    assert pace.rate == 0 and pace.seconds_for(10) == 0  # nothing measured yet: no guess
    for _ in range(80):  # 8 steps a second for 10 s
        pace.add(1, 0.125)
    assert pace.rate == 8 and pace.seconds_for(40) == 5
    pace.add(1, 0.5)  # it slows to 2 steps a second: the very first slow report already moves the estimate
    assert 5 < pace.seconds_for(40) < 20
    for _ in range(9):  # 5 s at the new pace: the window holds nothing older
        pace.add(1, 0.5)
    assert pace.rate == 2 and pace.seconds_for(40) == 20
    for _ in range(39):  # back up to 8 a second: 39 steps are not yet 5 s of it, so the old pace still weighs
        pace.add(1, 0.125)
    assert pace.rate < 8
    pace.add(1, 0.125)  # 40 steps, 5 s: exact again
    assert pace.rate == 8


def test_pace_keeps_the_last_report_when_one_report_is_longer_than_the_window():
    pace = Pace(window=5.0)
    pace.add(100, 10.0)
    pace.add(30, 30.0)  # a long log interval: the estimate is that interval's rate, not an average with the old one
    assert pace.rate == pytest.approx(1.0)


@pytest.fixture
def fake_clock(monkeypatch):
    """training's clock runs only when the model does: each training forward costs `step` seconds, each test pass `test`."""
    clock = SimpleNamespace(now=0.0, step=0.125, test=2.0, steps=0, slow_after=None, slow=0.5)
    monkeypatch.setattr(training, "time", SimpleNamespace(perf_counter=lambda: clock.now))
    real_build = training.build

    def tick(module, args):
        if module.training:
            clock.steps += 1
            slowed = clock.slow_after is not None and clock.steps > clock.slow_after
            clock.now += clock.slow if slowed else clock.step
        else:
            clock.now += clock.test  # one forward per test pass here: the tiny set is one evaluation batch

    def build(*args, **kwargs):
        model = real_build(*args, **kwargs)
        model.register_forward_pre_hook(tick)
        return model

    monkeypatch.setattr(training, "build", build)
    return clock


def test_a_slowdown_mid_run_shows_in_the_estimate_within_the_window(fake_clock, tiny_dataset):
    """The class gets busy at step 24: 0.125 s a step becomes 0.5 s. Within 5 s of it the estimate is the new pace's."""
    fake_clock.slow_after = 24
    config = TrainConfig(batch_size=8, epochs=8, lr=0.01, log_interval=1, device="cpu", seed=0, threads=1)
    events = []
    train(config, tiny_dataset, on_event=events.append)
    batches = {e.global_step: e for e in events if isinstance(e, BatchEnd)}
    total = 8 * 8  # 64 images in batches of 8, 8 epochs
    assert len(batches) == total and sum(isinstance(e, EpochEnd) for e in events) == 8

    def expected(g, seconds_per_step):  # the steps to go at that pace, and the test passes to go at 2 s each
        tests_left = 8 - batches[g].epoch + 1
        return (total - g) * seconds_per_step + tests_left * fake_clock.test

    assert batches[20].eta_seconds == pytest.approx(expected(20, 0.125))  # steady: exact (test passes measured)
    steps_part = lambda g: batches[g].eta_seconds - (8 - batches[g].epoch + 1) * fake_clock.test
    assert steps_part(25) > steps_part(24)  # one slow step in, the estimate for the steps already goes up
    for g in range(34, total + 1):  # 10 slow steps = 5 s of the new pace: exact from then on
        assert batches[g].eta_seconds == pytest.approx(expected(g, 0.5)), g
    # The old estimate, the mean over the whole run, was still far below at step 34: 8 s for 34 steps.
    b = batches[34]
    assert b.train_seconds / b.global_step * (total - 34) < 0.5 * expected(34, 0.5)


def test_test_passes_count_once_one_is_measured_and_the_last_step_leaves_only_the_last_one(fake_clock, tiny_dataset):
    config = TrainConfig(batch_size=4, epochs=2, lr=0.01, log_interval=4, device="cpu", seed=0, threads=1)
    events = []
    train(config, tiny_dataset, on_event=events.append)
    batches = [e for e in events if isinstance(e, BatchEnd)]
    assert batches[0].eta_seconds == pytest.approx((32 - 4) * 0.125)  # no test pass measured yet
    assert batches[4].epoch == 2 and batches[4].eta_seconds == pytest.approx((32 - 20) * 0.125 + fake_clock.test)
    assert batches[-1].global_step == 32 and batches[-1].eta_seconds == pytest.approx(fake_clock.test)
