"""The runs page: every run from memory and from disk, opened by ?run=ID (validated), overlaid for comparison."""

from __future__ import annotations

import json
import time

import pytest
from streamlit.testing.v1 import AppTest

from classroom.config import TrainConfig
from classroom.runs import RunManager
from tests import full_disk, run_folders
from tests.run_folders import DAMAGE
from ui import state

TIMEOUT = 60
QUICK = TrainConfig(data="shapes", batch_size=64, lr=0.02, epochs=2, log_interval=5, max_steps=20, device="cpu")


@pytest.fixture(scope="module")
def earlier_runs(tmp_path_factory):
    """Two finished runs written to disk by an earlier server process: (folder, ids)."""
    folder = tmp_path_factory.mktemp("runs")
    earlier = RunManager(folder)
    ids = [earlier.submit(QUICK.replace(name=f"run {i}", seed=i)) for i in range(2)]
    for run_id in ids:
        assert earlier.wait(run_id, timeout=120).status == "finished"
    earlier.shutdown()
    return folder, ids


@pytest.fixture
def runs_dir(earlier_runs, tmp_path, monkeypatch):
    """The page's manager: a fresh one (as after a restart) that reads the earlier runs back from disk."""
    folder, ids = earlier_runs
    yield from served(folder, tmp_path, monkeypatch, ids)


def served(folder, tmp_path, monkeypatch, value):
    """Fixture body: the app's RunManager reads `folder` (as after a restart); yields value; stops its runs after."""
    monkeypatch.setenv("CLASSROOM_RUNS_DIR", str(folder))
    monkeypatch.setenv("CLASSROOM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("CLASSROOM_TOKEN", raising=False)
    state.manager.clear()
    yield value
    state.manager().shutdown()
    state.manager.clear()


def runs_page(run: str | None = None) -> AppTest:
    at = AppTest.from_file("../app.py", default_timeout=TIMEOUT)
    if run is not None:
        at.query_params["run"] = run
    at.switch_page("pages/runs.py").run()
    assert not at.exception
    return at


def test_an_empty_server_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("CLASSROOM_RUNS_DIR", str(tmp_path / "runs"))
    state.manager.clear()
    try:
        at = runs_page()
        assert "No runs yet" in at.info[0].value
    finally:
        state.manager.clear()


def test_runs_from_disk_are_listed_and_one_opens_with_all_its_results(runs_dir, earlier_runs):
    at = runs_page()
    table = at.dataframe[0].value
    assert sorted(table["run"]) == sorted(runs_dir) and set(table["status"]) == {"finished"}
    saved = {i: json.loads((earlier_runs[0] / i / "results.json").read_text())["test_accuracy"] for i in runs_dir}
    assert dict(zip(table["run"], table["test accuracy %"])) == {i: round(100 * a, 1) for i, a in saved.items()}
    at.selectbox(key="runs.open").select(runs_dir[0]).run()
    assert not at.exception
    assert at.query_params["run"] == runs_dir[0]
    assert "Test results after epoch 2" in [h.value for h in at.subheader]
    assert len(at.get("image")) >= 16  # the gallery, recomputed from the checkpoint after the "restart"
    assert any(d.label == "Download the trained checkpoint" for d in at.download_button)


def test_a_link_with_run_id_opens_that_run(runs_dir):
    at = runs_page(run=runs_dir[1])
    assert at.selectbox(key="runs.open").value == runs_dir[1]
    assert any(runs_dir[1] in m.value for m in at.markdown)
    at.selectbox(key="runs.open").select(runs_dir[0]).run()  # then another run picked by hand: it stays picked
    assert at.selectbox(key="runs.open").value == runs_dir[0] and at.query_params["run"] == runs_dir[0]
    at.run()
    assert at.selectbox(key="runs.open").value == runs_dir[0]


@pytest.mark.parametrize("garbage", ["../../etc/passwd", "20990101-000000-abcdef", "<script>"])
def test_unknown_or_garbage_run_ids_get_a_message(runs_dir, garbage):
    at = runs_page(run=garbage)
    assert "Pick one below" in at.warning[0].value
    assert at.selectbox(key="runs.open").value is None


def test_several_runs_overlay_their_curves(runs_dir):
    at = runs_page()
    at.multiselect(key="runs.compare").set_value(runs_dir).run()
    assert not at.exception
    charts = at.get("plotly_chart")
    assert len(charts) == 2
    loss, accuracy = (json.loads(c.proto.spec) for c in charts)
    assert sorted(t["name"].split(" ")[0] for t in loss["data"]) == sorted(runs_dir)  # one trace per run, named by its id
    for figure in (loss, accuracy):
        legend, title = figure["layout"]["legend"], figure["layout"]["title"]
        # The legend at the foot of the figure, under the x axis title, not beside the plot's title
        assert legend["yref"] == "container" and legend["y"] == 0 and legend["yanchor"] == "bottom" and title["text"]
    assert accuracy["layout"]["xaxis"]["tickformat"] == "d" and accuracy["layout"]["xaxis"]["dtick"] == 1  # whole epochs


BROUGHT_BY_THE_PROBE = ("created is text", "created far ahead", "epoch without test_accuracy", "batch without epoch",
                        "results a list", "results status unknown")  # fmt: skip


@pytest.fixture
def damaged_runs(tmp_path, monkeypatch):
    """A runs folder with one sound run and one run damaged in each way: {damage name or 'sound': run id}."""
    folder = tmp_path / "runs"
    ids = {"sound": run_folders.write_run(folder, "20260101-115959-000000").name}
    for i, (name, (damage, _)) in enumerate(DAMAGE.items()):
        damage(run_folders.write_run(folder, f"20260101-1200{i:02d}-{i:06x}"))
        ids[name] = f"20260101-1200{i:02d}-{i:06x}"
    yield from served(folder, tmp_path, monkeypatch, ids)


def test_damaged_records_are_listed_and_open_without_charts(damaged_runs):
    at = runs_page()
    table = at.dataframe[0].value
    status = dict(zip(table["run"], table["status"]))
    assert status == {run_id: "finished" if name == "sound" else "damaged" for name, run_id in damaged_runs.items()}
    at.multiselect(key="runs.compare").set_value(list(damaged_runs.values())[:8]).run()
    assert not at.exception
    for name in BROUGHT_BY_THE_PROBE:
        at = runs_page(run=damaged_runs[name])
        assert any("damaged record" in m.value for m in at.info) and not at.get("plotly_chart")
    at = runs_page(run=damaged_runs["sound"])
    assert len(at.get("plotly_chart")) == 4  # loss, accuracy, per class, confusion: the sound run beside them draws


def test_a_run_kept_in_memory_by_a_full_disk_offers_its_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("CLASSROOM_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("CLASSROOM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("CLASSROOM_TOKEN", raising=False)
    state.manager.clear()
    try:
        full_disk.fill(monkeypatch, tmp_path / "runs")
        manager = state.manager()
        snapshot = manager.wait(manager.submit(QUICK), timeout=120)
        assert snapshot.status == "finished" and not snapshot.saved
        at = runs_page(run=snapshot.id)
        assert any(d.label == "Download the trained checkpoint" for d in at.download_button)
    finally:
        state.manager().shutdown()
        state.manager.clear()


def test_a_run_stopped_in_its_first_epoch_shows_its_final_accuracy(tmp_path, monkeypatch):
    """Stopped before any epoch ended, the run was still evaluated: the table shows that accuracy, not None."""
    folder = tmp_path / "runs"
    first = RunManager(folder)
    run_id = first.submit(QUICK.replace(epochs=1, max_steps=400, log_interval=1))
    deadline = time.monotonic() + TIMEOUT
    while first.get(run_id).last_batch is None:
        assert time.monotonic() < deadline, "no batch within the timeout"
        time.sleep(0.02)
    first.stop(run_id)
    stopped = first.wait(run_id, timeout=TIMEOUT)
    first.shutdown()
    assert stopped.status == "stopped" and not stopped.epochs and stopped.test_accuracy is not None
    expected = round(100 * stopped.test_accuracy, 1)
    for _ in served(folder, tmp_path, monkeypatch, None):  # a restarted server reads it back from results.json
        table = runs_page().dataframe[0].value
        assert list(table["test accuracy %"]) == [expected]
