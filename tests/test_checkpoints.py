"""Checkpoints: round trip, and refusal of anything that is not one (nothing in it ever runs)."""

import io
import os
import pickle
import random
import zipfile

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
    with pytest.raises(CheckpointError, match="not torch.save's zip format"):
        checkpoints.load(pickle.dumps(RunsCode(), protocol=2))  # a bare pickle, not even a torch zip
    assert not os.path.exists(MARKER)


def zipped(entries: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "blob, message",
    [
        (b"", "empty"),
        *[(random.Random(seed).randbytes(4096), "not a readable PyTorch checkpoint") for seed in range(40)],
        (b"PK\x03\x04" + bytes(200), "not a readable PyTorch checkpoint"),  # a zip header, then nothing
        (zipped({"notes.txt": b"hello"}), r"not a readable PyTorch checkpoint \(a zip without data.pkl\)"),
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
    path = tmp_path / "other.pt"
    torch.save({"epoch": 3, "optimizer": "adam"}, path)  # plain data, but neither a checkpoint nor a state_dict
    with pytest.raises(CheckpointError, match="neither a Torch Classroom checkpoint nor a model's state_dict"):
        checkpoints.load(path)


def test_weights_of_another_model_are_refused(tmp_path):
    path = checkpoints.save(tmp_path / "wide.pt", build("wide-net"), TrainConfig(model="net"), ["c"] * 10, {})
    with pytest.raises(CheckpointError, match="does not fit the 'net' model"):
        checkpoints.load(path)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        checkpoints.load(tmp_path / "nope.pt")


# --- hostile files: refused before they cost memory ---------------------------------------------


@pytest.fixture
def never_unpickled(monkeypatch):
    """torch.load calls: a hostile file must be refused before any (and none is ever really read here)."""
    calls = []

    def spy(*args, **kwargs):
        calls.append(args)
        raise AssertionError("torch.load was called")

    monkeypatch.setattr(torch, "load", spy)
    return calls


def real_checkpoint() -> bytes:
    return checkpoints.to_bytes(build("net"), TrainConfig(), [f"c{i}" for i in range(10)], {})


def rezipped(path, pickled=None, compression=zipfile.ZIP_STORED, extra=()):
    """A real checkpoint's zip written again: data.pkl as the chunks in pickled, compressed so; extra entries added."""
    with zipfile.ZipFile(io.BytesIO(real_checkpoint())) as source, zipfile.ZipFile(path, "w") as out:
        for info in source.infolist():
            chunks = [source.read(info)]
            if info.filename.endswith("data.pkl"):
                chunks, info.compress_type = pickled or chunks, compression
            with out.open(info, "w") as f:  # chunk by chunk: a 200 MB entry never sits in the test's memory
                for chunk in chunks:
                    f.write(chunk)
        for name, data in extra:
            out.writestr(name, data)
    return path


def real_pickle() -> bytes:
    with zipfile.ZipFile(io.BytesIO(real_checkpoint())) as z:
        return z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))


def test_a_zip_bomb_is_refused_before_torch_load(tmp_path, never_unpickled):
    # data.pkl deflated and padded to inflate to 200 MB, a few hundred KB on disk
    path = rezipped(tmp_path / "bomb.pt", [real_pickle()] + [bytes(1 << 20)] * 200, zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < 1 << 20
    for source in (path, path.read_bytes()):
        with pytest.raises(CheckpointError, match="refused: it is compressed"):
            checkpoints.load(source)
    assert never_unpickled == []


def test_a_checkpoint_that_would_unpack_too_big_is_refused(tmp_path, monkeypatch, never_unpickled):
    monkeypatch.setattr(checkpoints, "MAX_UNPACKED_MB", 1)  # stands for 512 MB: the test writes 2 MB, not 600
    padded = rezipped(tmp_path / "big.pt", extra=[("archive/data/99", bytes(2 << 20))])
    with pytest.raises(CheckpointError, match=r"refused: it would unpack to 2 MB \(at most 1 MB\)"):
        checkpoints.load(padded)
    assert never_unpickled == []


def test_a_checkpoint_with_too_many_files_is_refused(tmp_path, never_unpickled):
    many = rezipped(tmp_path / "many.pt", extra=[(f"archive/x{i}", b"") for i in range(10_000)])
    with pytest.raises(CheckpointError, match=r"refused: 10016 files in it \(at most 10000\)"):
        checkpoints.load(many)
    assert never_unpickled == []


def test_oversized_metadata_is_refused(tmp_path, never_unpickled):
    notes = pickle.dumps({"format": checkpoints.FORMAT, "notes": "x" * (5 << 20)})  # stored plainly, yet 5 MB of pickle
    with pytest.raises(CheckpointError, match=r"refused: its metadata \(data.pkl\) is over 4 MB"):
        checkpoints.load(rezipped(tmp_path / "notes.pt", [notes]))
    assert never_unpickled == []


def test_a_file_in_the_old_pickle_format_is_refused(never_unpickled):
    buffer = io.BytesIO()
    payload = checkpoints._payload(build("net"), TrainConfig(), [f"c{i}" for i in range(10)], {})
    torch.save(payload, buffer, _use_new_zipfile_serialization=False)  # torch.load would read it; this app does not
    with pytest.raises(CheckpointError, match=r"not a readable PyTorch checkpoint \(not torch.save's zip format\)"):
        checkpoints.load(buffer.getvalue())
    assert never_unpickled == []


@pytest.mark.parametrize("count", [1001, 200_000])
def test_too_many_classes_are_refused_in_one_short_line(tmp_path, count):
    names = [f"class{i}" for i in range(count)]
    path = checkpoints.save(tmp_path / "many.pt", build("net"), TrainConfig(), names, {})
    with pytest.raises(
        CheckpointError, match=rf"refused: {count} classes \('class0', 'class1', 'class2', …\); at most 1000"
    ) as e:
        checkpoints.load(path)
    assert len(str(e.value)) < 200 and "class3" not in str(e.value)


@pytest.mark.parametrize(
    "odd, shown",
    [("x" * 101, "'xxxxxxxxxxxxxxxxxxxx'…"), (7, "a int"), (["a", "b"], "a list")],
)
def test_class_names_must_be_short_text(tmp_path, odd, shown):
    path = checkpoints.save(tmp_path / "odd.pt", build("net"), TrainConfig(), [odd] + [f"c{i}" for i in range(9)], {})
    with pytest.raises(CheckpointError, match="class names must be text of at most 100 characters") as e:
        checkpoints.load(path)
    assert str(e.value).endswith(f"not {shown}") and len(str(e.value)) < 200


def test_a_checkpoint_at_every_limit_still_loads(tmp_path):
    classes = [f"{i:04d}".ljust(100, "x") for i in range(1000)]
    confusion = [[(7 * row + 13 * col) % 70_000 for col in range(1000)] for row in range(1000)]  # 3 MB of metadata
    model = build("net", num_classes=1000)
    path = checkpoints.save(tmp_path / "big.pt", model, TrainConfig(), classes, {"confusion": confusion})
    loaded, info = checkpoints.load(path)
    assert info["classes"] == classes and info["metrics"]["confusion"][999] == confusion[999]


@pytest.mark.parametrize("model_name", ["net", "wide-net", "fast-cnn"])
def test_the_tutorials_own_state_dict_loads_as_its_model(tmp_path, model_name):
    """torch.save(net.state_dict(), "cifar_net.pth"), as the tutorial (and the lab's script) saves: recognised from its
    keys and shapes, weights exact, CIFAR-10's class names, the settings its model trains with."""

    net = build(model_name)
    torch.save(net.state_dict(), tmp_path / "cifar_net.pth")
    model, info = checkpoints.load(tmp_path / "cifar_net.pth")
    assert type(model) is type(net) and info["model"] == model_name and info["config"].model == model_name
    assert info["classes"] == ["plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    for (key, theirs), ours in zip(net.state_dict().items(), model.state_dict().values()):
        assert torch.equal(theirs, ours), key
    assert not model.training


def test_a_state_dict_of_a_compiled_or_other_width_model_loads_and_a_foreign_one_is_refused():

    net = build("net", num_classes=3)
    compiled = {f"_orig_mod.{k}": v for k, v in net.state_dict().items()}  # what torch.compile's module saves
    buffer = io.BytesIO()
    torch.save(compiled, buffer)
    model, info = checkpoints.load(buffer.getvalue())
    assert info["classes"] == ["class 0", "class 1", "class 2"] and model.fc3.out_features == 3
    assert torch.equal(model.fc3.weight, net.fc3.weight)
    for foreign in ({"weight": torch.zeros(3)}, {k: v for k, v in net.state_dict().items() if k != "fc3.bias"}):
        buffer = io.BytesIO()
        torch.save(foreign, buffer)
        with pytest.raises(CheckpointError, match="a state_dict, but not of a model this app knows"):
            checkpoints.load(buffer.getvalue())
