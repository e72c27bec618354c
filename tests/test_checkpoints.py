"""Checkpoints: round trip, and refusal of anything that is not one (nothing in it ever runs)."""

import os
import pickle
import random

import pytest
import torch

from classroom import checkpoints
from classroom.checkpoints import CheckpointError
from classroom.config import TrainConfig
from classroom.models import build


@pytest.fixture
def saved(tmp_path):
    model = build("net")
    path = checkpoints.save(tmp_path / "net.pt", model, TrainConfig(), [f"c{i}" for i in range(10)], {"test_accuracy": 0.5})
    return model, path


def test_round_trip_keeps_weights_config_classes_and_metrics(saved):
    model, path = saved
    loaded, info = checkpoints.load(path)
    assert info["config"] == TrainConfig() and info["classes"][3] == "c3" and info["metrics"]["test_accuracy"] == 0.5
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    assert not loaded.training


def test_bytes_round_trip(saved):
    model, _ = saved
    blob = checkpoints.to_bytes(model, TrainConfig(), ["x"] * 10, {})
    assert checkpoints.load(blob)[1]["classes"] == ["x"] * 10


class RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


MARKER = "/tmp/torch-classroom-pwned"


def test_a_pickle_that_would_run_code_is_refused_and_never_runs(tmp_path):
    if os.path.exists(MARKER):
        os.remove(MARKER)
    path = tmp_path / "evil.pt"
    torch.save({"format": checkpoints.FORMAT, "payload": RunsCode()}, path)
    with pytest.raises(CheckpointError, match="refused"):
        checkpoints.load(path)
    with pytest.raises(CheckpointError, match="refused"):
        checkpoints.load(pickle.dumps(RunsCode(), protocol=2))  # a bare pickle, not even a torch zip
    assert not os.path.exists(MARKER)


@pytest.mark.parametrize(
    "blob, message",
    [
        (b"", "empty"),
        *[(random.Random(seed).randbytes(4096), "not a readable PyTorch checkpoint") for seed in range(40)],
        (b"PK\x03\x04" + bytes(200), "not a readable PyTorch checkpoint"),  # a zip header, then nothing
    ],
)
def test_garbage_is_refused(blob, message):
    with pytest.raises(CheckpointError, match=message):
        checkpoints.load(blob)


def test_a_truncated_file_is_refused(saved):
    _, path = saved
    blob = path.read_bytes()
    with pytest.raises(CheckpointError, match="not a readable"):
        checkpoints.load(blob[: len(blob) // 2])


def test_a_foreign_torch_file_is_refused(tmp_path):
    path = tmp_path / "plain.pt"
    torch.save(build("net").state_dict(), path)  # a plain state_dict, as the tutorial saves it
    with pytest.raises(CheckpointError, match="not a Torch Classroom checkpoint"):
        checkpoints.load(path)


def test_weights_of_another_model_are_refused(tmp_path):
    path = checkpoints.save(tmp_path / "wide.pt", build("wide-net"), TrainConfig(model="net"), ["c"] * 10, {})
    with pytest.raises(CheckpointError, match="does not fit the 'net' model"):
        checkpoints.load(path)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        checkpoints.load(tmp_path / "nope.pt")
