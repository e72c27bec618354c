"""The training loop: learning, reproducibility, stop and pause from another thread, divergence."""

import threading

import pytest
import torch

from classroom import training
from classroom.config import TrainConfig
from classroom.data import make_shapes
from classroom.training import BatchEnd, Control, EpochEnd, RunEnd, learning_rate, train

SMALL = TrainConfig(model="net", batch_size=32, lr=0.05, optimizer="nesterov", epochs=3, log_interval=5, device="cpu")


@pytest.fixture(scope="module")
def shapes():
    return make_shapes(n_train=1200, n_test=300)


def collect(config, dataset, control=None):
    events = []
    result = train(config, dataset, on_event=events.append, control=control)
    return result, events


def test_loss_falls_and_accuracy_beats_chance(shapes):
    result, events = collect(SMALL, shapes)
    losses = [e.loss for e in events if isinstance(e, BatchEnd)]
    assert result.status == "finished"
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3
    assert result.evaluation.accuracy > 0.3  # chance is 0.1
    epochs = [e for e in events if isinstance(e, EpochEnd)]
    assert [e.epoch for e in epochs] == [1, 2, 3] and epochs[-1].train_seconds >= epochs[0].seconds
    assert isinstance(events[-1], RunEnd) and events[-1].status == "finished"


def test_events_carry_progress_speed_and_eta(shapes):
    _, events = collect(SMALL.replace(epochs=1), shapes)
    batches = [e for e in events if isinstance(e, BatchEnd)]
    assert [b.step for b in batches][:3] == [5, 10, 15]
    assert batches[-1].global_step == batches[-1].total_steps == 38  # 1200 images / 32, the last batch partial
    assert all(b.images_per_sec > 0 and b.eta_seconds >= 0 for b in batches)
    assert batches[-1].eta_seconds == 0


def test_seeded_runs_are_reproducible_on_cpu(shapes):
    config = SMALL.replace(epochs=1, augment=True)
    (a, ea), (b, eb) = collect(config, shapes), collect(config, shapes)
    assert [e.loss for e in ea if isinstance(e, BatchEnd)] == [e.loss for e in eb if isinstance(e, BatchEnd)]
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(pa, pb)
    (c, ec) = collect(config.replace(seed=1), shapes)
    assert [e.loss for e in ec if isinstance(e, BatchEnd)] != [e.loss for e in ea if isinstance(e, BatchEnd)]


def test_stop_from_another_thread_ends_the_run_as_stopped(shapes):
    control = Control()

    def on_event(event):
        if isinstance(event, BatchEnd) and event.global_step >= 10:
            threading.Thread(target=control.stop).start()

    result = train(SMALL.replace(epochs=50, log_interval=1), shapes, on_event=on_event, control=control)
    assert result.status == "stopped" and "stopped by request" in result.message
    assert result.evaluation is not None  # a stopped model can still be looked at


def test_pause_holds_the_loop_until_resume(shapes):
    control = Control()
    steps = []
    paused_at = threading.Event()

    def on_event(event):
        if isinstance(event, BatchEnd):
            steps.append(event.global_step)
            if event.global_step == 3:
                control.pause()
                paused_at.set()

    worker = threading.Thread(target=train, args=(SMALL.replace(epochs=1, log_interval=1), shapes, on_event, control))
    worker.start()
    assert paused_at.wait(30)
    held = len(steps)
    worker.join(0.5)
    assert worker.is_alive() and len(steps) == held == 3  # nothing moved while paused
    control.resume()
    worker.join(60)
    assert not worker.is_alive() and steps[-1] == 38


def test_stop_wakes_a_paused_run(shapes):
    control = Control()
    control.pause()
    threading.Timer(0.2, control.stop).start()
    result = train(SMALL, shapes, control=control)
    assert result.status == "stopped"


def test_a_diverging_run_fails_with_an_explanation(shapes):
    result, events = collect(SMALL.replace(lr=10.0, optimizer="sgd", momentum=0.9, log_interval=1), shapes)
    assert result.status == "failed"
    assert "learning rate (10) is too high" in result.message
    assert isinstance(events[-1], RunEnd) and events[-1].status == "failed"


def test_onecycle_warms_up_then_decays_to_zero():
    c = TrainConfig(lr=1.0, schedule="onecycle", warmup=0.25)
    lrs = [learning_rate(c, s, 100) for s in range(100)]
    assert lrs[0] < lrs[10] < lrs[24] == 1.0
    assert lrs[50] > lrs[90] > lrs[99] >= 0
    assert learning_rate(TrainConfig(lr=0.3), 57, 100) == 0.3


def test_max_steps_runs_a_few_batches_of_each_phase(shapes):
    result, events = collect(SMALL.replace(epochs=2, max_steps=3, log_interval=1), shapes)
    assert [e.global_step for e in events if isinstance(e, BatchEnd)] == [1, 2, 3, 4, 5, 6]
    assert result.status == "finished" and len(result.history) == 2


def test_unavailable_device_is_refused():
    from classroom.training import resolve_device

    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            resolve_device("cuda")
    assert resolve_device("cpu").type == "cpu"


def test_augmented_runs_mirror_each_image_in_every_other_epoch(monkeypatch):
    dataset = make_shapes(n_train=64, n_test=16)
    dataset.train_x[:, 0, 0, 0] = torch.arange(64, dtype=torch.uint8)  # a pixel that names the image
    flips = {}  # image -> was it mirrored, epoch by epoch
    real = training.random_crop_flip

    def spy(x, pad, generator=None, flip=None):
        for image, mirrored in zip(x[:, 0, 0, 0].tolist(), flip.tolist()):
            flips.setdefault(image, []).append(mirrored)
        return real(x, pad, generator, flip)

    monkeypatch.setattr(training, "random_crop_flip", spy)
    train(SMALL.replace(batch_size=16, augment=True, translate=0), dataset)
    assert len(flips) == 64 and all(len(f) == 3 and f[0] != f[1] != f[2] for f in flips.values())
    assert 10 < sum(f[0] for f in flips.values()) < 54  # the first epoch's side is random
