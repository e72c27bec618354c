"""One run cannot change another: each run's CPU thread count and random numbers are its own, whatever else runs."""

import json
import threading

import pytest
import torch

from classroom import data, timing
from classroom import threads as cpu_threads
from classroom.config import TrainConfig
from classroom.models import Net
from classroom.runs import RunManager
from classroom.training import Control, train

WAIT = 60  # seconds any wait here may take before the test fails instead of hanging
TINY = TrainConfig(model="net", data="shapes", batch_size=64, lr=0.05, epochs=1, max_steps=3, log_interval=1, device="cpu")


@pytest.fixture(scope="module")
def small_shapes():
    return data.make_shapes(n_train=640, n_test=256)


@pytest.fixture
def default_threads(monkeypatch):
    """A process default of 3 threads, unlike the tutorial's 1 and torch's own here; torch's own again after."""
    real = cpu_threads.DEFAULT
    monkeypatch.setattr(cpu_threads, "DEFAULT", 3)
    torch.set_num_threads(3)  # what threads started from now on begin with, as torch's own default would be
    yield 3
    torch.set_num_threads(real)


def count_in_a_new_thread() -> int:
    """The thread count a thread started now gets (a page's script thread, the next run's thread)."""
    seen = []
    worker = threading.Thread(target=lambda: seen.append(torch.get_num_threads()), daemon=True)
    worker.start()
    worker.join(WAIT)
    return seen[0]


def test_overlapping_runs_and_a_timing_between_them_each_get_their_own_thread_count(
    tmp_path, monkeypatch, small_shapes, default_threads
):
    monkeypatch.setattr(data, "load", lambda source, *a, **k: small_shapes)
    counts = {}  # run name -> the thread count at each of its events, read in the run's own thread
    first_batch, release = threading.Event(), threading.Event()
    real_record = RunManager._record

    def record(self, run, event):
        counts.setdefault(run.config.name, []).append(torch.get_num_threads())
        if run.config.name == "tutorial" and not first_batch.is_set():
            first_batch.set()
            assert release.wait(WAIT), "the test never let the first run go on"  # held mid-run, its count set
        real_record(self, run, event)

    monkeypatch.setattr(RunManager, "_record", record)
    timed = []
    real_time_step = timing._time_step
    monkeypatch.setattr(timing, "_time_step", lambda *a: timed.append(torch.get_num_threads()) or real_time_step(*a))
    manager = RunManager(tmp_path, max_per_device=2)  # two CPU runs at once: the case the default of one avoids
    try:
        first = manager.submit(TINY.replace(name="tutorial", threads=1))
        assert first_batch.wait(WAIT)
        during = count_in_a_new_thread()  # a page's script thread started while the tutorial run goes
        second = manager.submit(TINY.replace(name="started during it"))  # threads=0: the process default
        assert manager.wait(second, WAIT).status == "finished"
        # a lesson's timing, in a page's script thread, while the first run still holds its one thread
        page = threading.Thread(target=lambda: timing.time_step(Net(), 4, "cpu", repeats=2, budget=0.01), daemon=True)
        page.start()
        page.join(WAIT)
        release.set()
        assert manager.wait(first, WAIT).status == "finished"
        third = manager.submit(TINY.replace(name="after both"))
        assert manager.wait(third, WAIT).status == "finished"
    finally:
        release.set()
        manager.shutdown()
    assert set(counts["started during it"]) == {default_threads}  # was 1: the first run's setting leaked into it
    assert set(counts["tutorial"]) == {1} and during == default_threads
    assert timed == [timing.CPU_THREADS]  # the timing counts with its own setting...
    assert set(counts["after both"]) == {default_threads}  # ...and leaves the default behind, as each run does
    assert count_in_a_new_thread() == torch.get_num_threads() == default_threads


def test_a_seeded_run_is_the_same_while_another_thread_reseeds_and_draws(small_shapes):
    config = TrainConfig(model="fast-cnn", batch_size=32, epochs=1, max_steps=2, lr=0.05, device="cpu", augment=True)

    def weights(model):
        return [t.clone() for t in model.state_dict().values()]

    def initial():  # stopped before its first step: the weights it starts from (FastCNN's whitening included)
        control = Control()
        control.stop()
        return weights(train(config, small_shapes, control=control).model)

    quiet_start, quiet_end = initial(), weights(train(config, small_shapes).model)
    stop = threading.Event()

    def noise():  # a lesson or a timing in another session: reseeding torch's global generator and drawing from it
        i = 0
        while not stop.is_set():
            torch.manual_seed(i)
            torch.rand(256)
            i += 1

    busy = threading.Thread(target=noise, daemon=True)
    busy.start()
    try:
        noisy = [(initial(), weights(train(config, small_shapes).model)) for _ in range(2)]
    finally:
        stop.set()
        busy.join(WAIT)
    for start, end in noisy:
        assert all(torch.equal(a, b) for a, b in zip(start, quiet_start))
        assert all(torch.equal(a, b) for a, b in zip(end, quiet_end))


def test_a_run_leaves_torchs_global_generator_alone_and_records_the_seed_it_drew(small_shapes):
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    result = train(TINY.replace(seed=None), small_shapes)
    assert torch.equal(torch.random.get_rng_state(), state)  # a lesson seeded in another thread draws what it expects
    again = train(TINY.replace(seed=result.seed), small_shapes)  # the drawn seed repeats the run
    assert all(torch.equal(a, b) for a, b in zip(result.model.state_dict().values(), again.model.state_dict().values()))


def test_a_run_submitted_without_a_seed_records_the_one_it_drew(tmp_path, monkeypatch, small_shapes):
    monkeypatch.setattr(data, "load", lambda source, *a, **k: small_shapes)
    manager = RunManager(tmp_path)
    try:
        run_id = manager.submit(TINY.replace(seed=None))
        done = manager.wait(run_id, WAIT)
    finally:
        manager.shutdown()
    seed = json.loads((tmp_path / run_id / "config.json").read_text())["config"]["seed"]
    assert isinstance(seed, int) and done.config.seed == seed
    repeated = train(TINY.replace(seed=seed), small_shapes)
    assert repeated.evaluation.summary()["confusion"] == done.epochs[-1]["confusion"]
    assert [e.test_loss for e in repeated.history] == [e["test_loss"] for e in done.epochs]


def test_a_count_set_for_some_work_holds_when_another_thread_sets_its_own_before_the_work_computes(default_threads):
    counted, other_set, seen = threading.Event(), threading.Event(), []

    def work():  # a fresh thread that sets its count and has not computed anything yet
        with cpu_threads.using(1):
            counted.set()
            assert other_set.wait(WAIT)
            seen.append(torch.get_num_threads())  # torch's first parallel op in this thread would adopt 5 here

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    assert counted.wait(WAIT)
    other = threading.Thread(target=torch.set_num_threads, args=(5,))  # another run starting with its own count
    other.start()
    other.join(WAIT)
    other_set.set()
    worker.join(WAIT)
    assert seen == [1]
