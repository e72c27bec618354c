"""Sample predictions during training: the same test images every epoch, in the events, the snapshot, the record, the lab."""

from __future__ import annotations

import json
import re
import threading
import time

import pytest
import torch

from classroom import data, training
from classroom.config import TrainConfig
from classroom.evaluation import SAMPLES, sample_indices, sample_predictions
from classroom.runs import RunManager
from classroom.training import EpochEnd, train
from tests import run_folders
from tests.test_lab import button, lab_env, open_lab, quick_run  # noqa: F401 (lab_env is a fixture)
from ui import state

QUICK = TrainConfig(data="shapes", batch_size=32, lr=0.05, epochs=3, max_steps=6, log_interval=2, device="cpu", threads=1)


@pytest.fixture(scope="module")
def small_shapes():
    return data.make_shapes(n_train=320, n_test=200)


@pytest.fixture
def manager(tmp_path, monkeypatch, small_shapes):
    """A RunManager on tmp_path whose shapes runs train on a small set; shut down afterwards."""
    real_load = data.load
    monkeypatch.setattr(data, "load", lambda source, *a, **k: small_shapes if source == "shapes" else real_load(source, *a, **k))
    made = []

    def make():
        made.append(RunManager(tmp_path))
        return made[-1]

    yield make
    for m in made:
        m.shutdown()


def wait_for(predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    return value


def test_sample_images_are_spread_over_the_classes_in_test_set_order():
    labels = torch.tensor([2, 0, 1, 0, 2, 1, 1, 0])
    assert sample_indices(labels) == [1, 2, 0, 3, 5, 4, 7, 6]  # each class's first, then each one's second, ...
    assert sample_indices(labels, n=4) == [1, 2, 0, 3]
    assert sample_indices(torch.tensor([], dtype=torch.long)) == []
    shapes = data.make_shapes(n_train=10, n_test=200)
    picked = sample_indices(shapes.test_y)
    assert len(picked) == SAMPLES and sorted(shapes.test_y[picked].tolist()) == list(range(10))  # one per class


def test_every_epoch_reports_the_same_images_and_the_last_epoch_the_final_evaluations_predictions(small_shapes):
    events = []
    result = train(QUICK, small_shapes, on_event=events.append)
    epochs = [e for e in events if isinstance(e, EpochEnd)]
    indices = [[s["index"] for s in e.samples] for e in epochs]
    assert len(epochs) == 3 and indices[0] == indices[1] == indices[2] == sample_indices(small_shapes.test_y)
    assert epochs[-1].samples == sample_predictions(result.evaluation, indices[0])
    for s in epochs[-1].samples:
        assert s["label"] == int(small_shapes.test_y[s["index"]])
        assert s["top"][0][0] == int(result.evaluation.predictions[s["index"]]) and len(s["top"]) == 3
        assert s["top"][0][1] >= s["top"][1][1] >= s["top"][2][1]
    assert len(json.dumps(epochs[-1].samples)) < 1000  # no pixels: an epoch line stays short


def test_the_samples_change_nothing_in_the_training(monkeypatch, tiny_dataset):
    """They come from the test pass the epoch does anyway: the same losses and weights with them as without."""
    config = TrainConfig(batch_size=8, epochs=2, lr=0.05, log_interval=2, device="cpu", seed=3, threads=1, augment=True)
    with_samples = train(config, tiny_dataset)
    monkeypatch.setattr(training, "sample_predictions", lambda *a, **k: [])
    without = train(config, tiny_dataset)
    assert with_samples.history[-1].samples and not without.history[-1].samples
    assert [e.train_loss for e in with_samples.history] == [e.train_loss for e in without.history]
    for a, b in zip(with_samples.model.state_dict().values(), without.model.state_dict().values()):
        assert torch.equal(a, b)
    assert with_samples.model.training  # the evaluation gave the model back in training mode


def test_a_run_shows_each_epochs_samples_while_it_trains_and_the_final_ones_after_a_restart(
    manager, tmp_path, small_shapes, monkeypatch
):
    from classroom import runs

    held, controls, real_train = threading.Event(), [], runs.train

    def train_held_after_epoch_2(config, dataset, on_event, control):
        """The run pauses itself right after epoch 2's event, so the check sees it going, whatever the machine's speed."""

        def hold(event):
            on_event(event)
            if isinstance(event, EpochEnd) and event.epoch == 2:
                control.pause()
                controls.append(control)
                held.set()

        return real_train(config, dataset, on_event=hold, control=control)

    monkeypatch.setattr(runs, "train", train_held_after_epoch_2)
    first = manager()
    run_id = first.submit(QUICK.replace(epochs=4, max_steps=4, seed=1), owner="s")
    assert held.wait(60)
    snap = first.get(run_id)
    assert snap.active and snap.samples_epoch == 2 and len(snap.epochs) == 2
    assert snap.samples == tuple(snap.epochs[-1]["samples"]) and len(snap.samples) == SAMPLES
    images = first.sample_images(run_id, [s["index"] for s in snap.samples])
    assert all(torch.equal(images[s["index"]], small_shapes.test_x[s["index"]]) for s in snap.samples)  # kept in memory
    controls[0].resume()
    done = first.wait(run_id, 60)
    assert done.status == "finished" and done.samples_epoch == 4 and done.samples == tuple(done.epochs[-1]["samples"])

    folder = tmp_path / run_id
    results = json.loads((folder / "results.json").read_text())
    assert results["samples"] == list(done.samples)  # the final evaluation's, for a run read back
    lines = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    epoch_lines = [line for line in lines if line["kind"] == "epoch"]
    assert [len(line["samples"]) for line in epoch_lines] == [SAMPLES] * 4
    assert max(len(json.dumps(line["samples"])) for line in epoch_lines) < 1000  # indices and guesses, no pixels

    again = manager()  # the server restarted: the record says it all; the images come from the data set again
    snap = again.get(run_id)
    assert snap.samples == done.samples and snap.samples_epoch == 4
    images = again.sample_images(run_id, [s["index"] for s in snap.samples])
    assert all(torch.equal(images[s["index"]], small_shapes.test_x[s["index"]]) for s in snap.samples)


def test_a_stopped_run_shows_the_predictions_of_the_model_it_stopped_with(manager, tmp_path):
    first = manager()
    run_id = first.submit(QUICK.replace(epochs=50, batch_size=8, max_steps=40, log_interval=1, seed=2), owner="s")
    wait_for(lambda: (s := first.get(run_id)).epochs and s.last_batch["global_step"] >= 45)  # a few steps into epoch 2
    first.pause(run_id)
    wait_for(lambda: first.get(run_id).status == "paused")
    first.stop(run_id)
    done = first.wait(run_id, 60)
    assert done.status == "stopped" and done.samples_epoch == 0  # evaluated mid-epoch, after the last epoch's samples
    assert done.samples != tuple(done.epochs[-1]["samples"])
    assert [s["index"] for s in done.samples] == [s["index"] for s in done.epochs[-1]["samples"]]  # the same images
    again = manager().get(run_id)
    assert again.samples == done.samples and again.samples_epoch == 0


def _bad_label(results):
    results["samples"][0]["label"] = 7


def _pixels(results):
    results["samples"][0]["pixels"] = [0] * 3072


def _bad_probability(results):
    results["samples"][0]["top"][0][1] = 1.5


@pytest.mark.parametrize(
    "change, reason",
    [
        (_bad_label, "results.json: samples: label is not one of the 3 classes"),
        (_pixels, "results.json: samples holds something other than {index, label, top}"),
        (_bad_probability, "results.json: samples: top: probability is out of range"),
    ],
)
def test_damaged_samples_make_a_damaged_record(tmp_path, change, reason):
    folder = run_folders.write_run(tmp_path, "20260101-120000-abc123")
    good = [{"index": 4, "label": 1, "top": [[1, 0.9], [0, 0.07], [2, 0.03]]}]
    run_folders.edit_json(folder / "results.json", lambda r: r.update(samples=good))
    snap = RunManager(tmp_path).get(folder.name)
    assert snap.status == "finished" and snap.samples == tuple(good) and snap.samples_epoch == 0  # no epoch lines with samples
    run_folders.edit_json(folder / "results.json", change)
    snap = RunManager(tmp_path).get(folder.name)
    assert snap.status == "damaged" and reason in snap.message


def test_an_epoch_line_with_samples_of_unknown_classes_makes_a_damaged_record(tmp_path):
    folder = run_folders.write_run(tmp_path, "20260101-120000-abc123")
    run_folders.edit_line(folder, "epoch", lambda e: e.update(samples=[{"index": 0, "label": 0, "top": [[3, 0.5]]}]))
    snap = RunManager(tmp_path).get(folder.name)
    assert snap.status == "damaged" and "metrics.jsonl line 3: samples: top names a class past the 3 classes" in snap.message


@pytest.mark.usefixtures("lab_env")
def test_the_lab_draws_the_samples_after_an_epoch_while_the_run_goes_on():
    at = open_lab()
    quick_run(at, epochs=50)
    button(at, "Start training").click().run()
    run_id = at.session_state["lab_run"]
    mgr = state.manager()
    wait_for(lambda: mgr.get(run_id).epochs)
    mgr.pause(run_id)  # hold it going while the page is checked
    epoch = mgr.get(run_id).samples_epoch
    at.run()
    assert not at.exception and mgr.get(run_id).active
    assert f"Sample predictions after epoch {epoch} of 50" in [h.value for h in at.subheader]
    assert any("The same 10 test images after every epoch" in c.value for c in at.caption)
    assert len(at.get("image")) == 10  # the images, from the run's memory
    assert "Sample test images" not in [h.value for h in at.subheader]  # the final gallery comes only at the end
    mgr.stop(run_id)
    assert mgr.wait(run_id, 60).status == "stopped"
    at.run()
    headings = [h.value for h in at.subheader]
    assert not at.exception and "Sample test images" in headings
    assert any(h.startswith("Sample predictions ") for h in headings)  # the final ones, in the same place


@pytest.mark.browser
@pytest.mark.timeout(300)
def test_the_samples_fill_in_in_the_browser_before_the_run_ends(browser, tmp_path):
    from playwright.sync_api import expect

    from tests.browser import MAIN, screenshot, serve
    from tests.test_e2e import set_number, settle

    env = {"CLASSROOM_RUNS_DIR": str(tmp_path / "runs"), "CLASSROOM_DATA_DIR": str(tmp_path / "data")}
    with serve(env) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 3800})  # tall: the whole run in one screenshot
        page.goto(f"{url}/lab")
        settle(page)
        set_number(page, "Epochs", 200)  # far longer than the test: it is stopped once the samples are checked
        set_number(page, "Batch size", 32)
        set_number(page, "Learning rate", 0.02)
        page.get_by_text("More knobs").click()
        set_number(page, "Loss report every (steps)", 10)
        set_number(page, "Steps per epoch cap (0 = all)", 60)
        page.get_by_role("button", name="Start training").click()
        main = page.locator(MAIN)
        heading = main.get_by_role("heading", name=re.compile(r"^Sample predictions after epoch \d+ of 200$"))
        heading.wait_for(timeout=120_000)
        expect(main.get_by_text("The same 10 test images after every epoch")).to_be_visible()
        stop = main.get_by_role("button", name="Stop", exact=True)
        expect(stop).to_be_visible()  # still going
        # The ten tiles: images with their true class and top-3 line below the heading.
        images = main.locator('[data-testid="stImage"]')
        expect(images).to_have_count(10, timeout=30_000)
        screenshot(page, "live-samples-mid-run")
        stop.click()
        main.get_by_text("Sample test images").first.wait_for(timeout=90_000)  # ended: the final gallery beside them
        expect(main.get_by_role("heading", name="Sample predictions", exact=False).first).to_be_visible()
