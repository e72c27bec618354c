"""The training loop: learning, reproducibility, stop and pause from another thread, divergence."""

import threading

import pytest
import torch

from classroom import training
from classroom.config import TrainConfig
from classroom.data import make_shapes, normalize
from classroom.evaluation import evaluate
from classroom.training import BatchEnd, Control, EpochEnd, RunEnd, evaluate_run, learning_rate, train

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
    assert all(b.images_per_sec > 0 for b in batches)
    assert all(b.eta_seconds > 0 for b in batches[:-1])  # the recent pace (tests/test_eta.py checks it on a fake clock)
    assert batches[-1].eta_seconds == 0  # nothing left to train, and no test pass measured yet to count


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
    assert len(result.evaluation.labels) == 300  # a stopped model can still be looked at: on the whole test set


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

    args = (SMALL.replace(epochs=1, log_interval=1), shapes, on_event, control)
    worker = threading.Thread(target=train, args=args, daemon=True)  # daemon: a loop that never wakes cannot hang pytest's exit
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
    ended = []
    worker = threading.Thread(target=lambda: ended.append(train(SMALL, shapes, control=control)), daemon=True)
    worker.start()
    worker.join(30)  # a paused loop that stop does not wake would otherwise hold the test forever
    assert not worker.is_alive(), "stop did not wake the paused run"
    assert ended[0].status == "stopped"


def test_a_diverging_run_fails_with_an_explanation(shapes):
    result, events = collect(SMALL.replace(lr=10.0, optimizer="sgd", momentum=0.9, log_interval=1), shapes)
    assert result.status == "failed"
    assert "learning rate (10) is too high" in result.message
    assert isinstance(events[-1], RunEnd) and events[-1].status == "failed"


def test_onecycle_peaks_once_at_the_end_of_warm_up_and_reaches_zero_at_the_last_step():
    c = TrainConfig(lr=1.0, schedule="onecycle", warmup=0.25)
    lrs = [learning_rate(c, s, 100) for s in range(100)]
    assert lrs[:25] == pytest.approx([(s + 1) / 25 for s in range(25)])  # up by 1/25 a step to the peak at step 24
    assert lrs[24:] == pytest.approx([(99 - s) / 75 for s in range(24, 100)])  # down by 1/75 a step to 0 at step 99
    assert lrs.count(1.0) == 1 and lrs[99] == 0.0 and min(lrs[:99]) > 0
    no_warm_up = TrainConfig(lr=0.5, schedule="onecycle", warmup=0.0)  # the peak is the first step
    assert [learning_rate(no_warm_up, s, 5) for s in range(5)] == pytest.approx([0.5, 0.375, 0.25, 0.125, 0.0])
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

    def spy(x, pad, generator=None, flip=None, shift=None):
        for image, mirrored in zip(x[:, 0, 0, 0].tolist(), flip.tolist()):
            flips.setdefault(image, []).append(mirrored)
        return real(x, pad, generator, flip, shift)

    monkeypatch.setattr(training, "random_crop_flip", spy)
    train(SMALL.replace(batch_size=16, augment=True, translate=0), dataset)
    assert len(flips) == 64 and all(len(f) == 3 and f[0] != f[1] != f[2] for f in flips.values())
    assert 10 < sum(f[0] for f in flips.values()) < 54  # the first epoch's side is random


def test_training_and_test_losses_are_both_plain_cross_entropy_under_label_smoothing(tiny_dataset):
    # A learning rate too small to move the weights: every training batch then meets the same model, whose plain
    # cross-entropy on the training images evaluate() gives. The smoothed loss it trains on is far above it.
    config = TrainConfig(batch_size=4, epochs=1, lr=1e-12, label_smoothing=0.4, log_interval=4, device="cpu")
    events = []
    result = train(config, tiny_dataset, on_event=events.append)
    d, epoch = tiny_dataset, result.history[-1]
    on_train = evaluate(result.model, d.train_x, d.train_y, d.classes, config.mean, config.std)
    assert epoch.train_loss == pytest.approx(on_train.loss, rel=1e-4)
    batches = [e.loss for e in events if isinstance(e, BatchEnd)]
    assert sum(batches) / len(batches) == pytest.approx(on_train.loss, rel=1e-4)  # 16 equal batches, 4 reports
    assert epoch.test_loss == pytest.approx(evaluate(result.model, d.test_x, d.test_y, d.classes, config.mean, config.std).loss)


def test_a_runs_test_evaluation_is_a_plain_forward_of_the_normalised_test_images(tiny_dataset):
    # FastCNN has BatchNorm: in training mode its outputs would depend on the batch. Augmented training, so that
    # augmenting the test images as well would show.
    config = TrainConfig(model="fast-cnn", batch_size=16, epochs=1, lr=0.05, augment=True, mean=(0.4, 0.5, 0.6), device="cpu")
    result = train(config, tiny_dataset)
    model, d = result.model, tiny_dataset
    assert model.training  # evaluation gives the model back as it found it
    with torch.no_grad():
        expected = model.eval()(normalize(d.test_x, config.mean, config.std)).softmax(1)
    assert torch.allclose(result.evaluation.probabilities, expected, atol=1e-6)
    again = evaluate_run(model.train(), config, d, bf16=False)  # and again: nothing random in it
    assert torch.equal(again.probabilities, result.evaluation.probabilities)
