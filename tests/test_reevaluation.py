"""A run's evaluation done again (after a restart, from the command line, from an upload) gives the numbers it recorded."""

import json

import pytest

from classroom import __main__ as cli
from classroom import data
from classroom.config import TrainConfig
from classroom.runs import RunManager
from classroom.training import evaluation_limit

WAIT = 60  # seconds a run here may take before the test fails instead of hanging
# bf16, TTA, its own normalisation and a dry run's test subset: everything that moves the numbers when forgotten
RECIPE = TrainConfig(
    model="net", data="shapes", batch_size=64, lr=0.05, epochs=1, max_steps=2, log_interval=1, device="cpu",
    precision="bf16", tta=True, mean=(0.2, 0.3, 0.4), std=(0.1, 0.2, 0.3),
)  # fmt: skip


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A run of RECIPE on 2100 test images, of which it evaluates 2000: (runs folder, run id, data set)."""
    shapes = data.make_shapes(n_train=256, n_test=2100)
    folder = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(data, "load", lambda source, *a, **k: shapes)
        manager = RunManager(folder)
        try:
            done = manager.wait(manager.submit(RECIPE), WAIT)
        finally:
            manager.shutdown()
    assert done.status == "finished", done.message
    return folder, done.id, shapes


def recorded(folder, run_id) -> dict:
    return json.loads((folder / run_id / "results.json").read_text())


def test_a_restarted_server_recomputes_the_evaluation_the_run_recorded(finished_run, monkeypatch):
    folder, run_id, shapes = finished_run
    monkeypatch.setattr(data, "load", lambda source, *a, **k: shapes)
    evaluation, _ = RunManager(folder).evaluation(run_id)  # a new server: from the checkpoint
    saved = recorded(folder, run_id)
    assert saved["images"] == evaluation_limit(RECIPE) == 2000
    assert evaluation.summary()["confusion"] == saved["confusion"]  # the same counts, image for image
    assert evaluation.loss == pytest.approx(saved["test_loss"], rel=1e-6)


def test_an_uploaded_checkpoint_is_evaluated_as_its_run_was(finished_run, monkeypatch, tmp_path):
    from ui.results import _evaluate_upload

    folder, run_id, shapes = finished_run
    monkeypatch.setattr(data, "load", lambda source, *a, **k: shapes)
    _, evaluation = _evaluate_upload((folder / run_id / "checkpoint.pt").read_bytes(), str(tmp_path))
    saved = recorded(folder, run_id)
    assert evaluation.summary()["confusion"] == saved["confusion"]
    assert evaluation.loss == pytest.approx(saved["test_loss"], rel=1e-6)


def test_the_command_line_evaluates_a_checkpoint_as_its_run_did(monkeypatch, tmp_path, capsys):
    shapes = data.make_shapes(n_train=64, n_test=5100)  # a dry run evaluates 5000 of them
    monkeypatch.setattr(data, "load", lambda source, *a, **k: shapes)
    args = ["--preset", "tutorial", "--dry-run", "--precision", "bf16", "--device", "cpu", "--out", str(tmp_path)]
    assert cli.main(["train", *args]) == 0
    trained = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Accuracy")]
    assert cli.main(["evaluate", "--checkpoint", str(tmp_path / "net.dry-run.pt")]) == 0
    evaluated = capsys.readouterr().out.splitlines()
    assert trained[0].startswith("Accuracy of the network on the 5000 test images")
    assert evaluated == trained  # overall and per class, to the tenth of a percent
