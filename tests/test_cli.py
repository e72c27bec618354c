"""The command line: the tutorial's output format, --json, exit codes with one clear line, presets that learn."""

import json
import os
import re
import subprocess
import sys

import pytest
import torch

from classroom import checkpoints, data
from classroom.__main__ import main
from classroom.config import preset
from classroom.training import train


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data._cache.clear()


def counts(checkpoint: str) -> tuple[int, int, list[list[int]]]:
    """(correct, total, confusion matrix) of the trained model on the test set, as its checkpoint keeps them."""
    confusion = checkpoints.load(checkpoint)[1]["metrics"]["confusion"]
    return sum(confusion[i][i] for i in range(len(confusion))), sum(map(sum, confusion)), confusion


def test_train_prints_the_tutorials_lines_and_json(capsys):
    assert main(["train", "--data", "shapes", "--dry-run", "--json", "--out", "ckpt"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"\[1,     1\] loss: \d\.\d{3}", out[0])
    assert re.fullmatch(r"Accuracy of the network on the \d+ test images: \d+ %", out[out.index("Finished Training") + 1])
    class_lines = [line for line in out if line.startswith("Accuracy for class: ")]
    assert len(class_lines) == 10 and re.fullmatch(r"Accuracy for class: circle is \d+\.\d %", class_lines[0])
    result = json.loads(out[-1])
    assert set(result) >= {"test_accuracy", "train_seconds", "epochs", "device", "per_class_accuracy"}
    assert result["device"] == "cpu" and result["epochs"] == 1
    # The numbers agree with the counts behind them: the confusion matrix over the 2,000 test images.
    correct, total, confusion = counts(result["checkpoint"])
    assert total == 2000 and result["test_accuracy"] == pytest.approx(correct / total, abs=1e-6)
    overall = out[out.index("Finished Training") + 1]
    assert overall == f"Accuracy of the network on the 2000 test images: {100 * correct // total} %"
    per_class = {name: confusion[i][i] / sum(confusion[i]) for i, name in enumerate(data.SHAPES_CLASSES)}
    assert result["per_class_accuracy"] == pytest.approx(per_class, abs=1e-6)


def test_evaluate_reloads_the_saved_model(capsys):
    assert main(["train", "--data", "shapes", "--dry-run", "--json", "--out", "ckpt"]) == 0
    out = capsys.readouterr().out.splitlines()
    trained = json.loads(out[-1])
    printed = out[out.index("Finished Training") + 1 :][:11]  # the overall line and one per class
    correct, total, _ = counts(trained["checkpoint"])
    assert main(["evaluate", "--checkpoint", trained["checkpoint"]]) == 0
    again = capsys.readouterr().out.splitlines()
    # Counts, not a float32 accuracy turned back into a percentage: the reloaded model gets the same images right.
    assert again[0] == f"Accuracy of the network on the {total} test images: {100 * correct // total} %"
    assert again == printed  # and the same number in every class


@pytest.mark.parametrize(
    "argv, code, message",
    [
        (["train", "--batch-size", "0"], 2, "batch_size: must be between 1 and 4096"),
        (["train", "--lr", "abc"], 2, "argument --lr: invalid float value"),
        (["train", "--preset", "bogus"], 2, "preset: unknown preset"),
        (["train", "--device", "tpu"], 2, "device: unknown device"),
        (["train", "--data", "cifar10", "--data-dir", "nowhere"], 1, "CIFAR-10 is not in nowhere"),
        (["train", "--data", "folder:/no/such/dir"], 1, "/no/such/dir/train is not a folder"),
        (["evaluate", "--checkpoint", "missing.pt"], 1, "no such checkpoint"),
        (["frobnicate"], 2, "invalid choice"),
    ],
)
def test_bad_input_exits_with_one_clear_line(capsys, argv, code, message):
    with pytest.raises(SystemExit) as exit_:
        sys.exit(main(argv))
    assert exit_.value.code == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_a_refused_checkpoint_exits_1_without_a_traceback(tmp_path):
    class RunsTrue:
        def __reduce__(self):
            return (os.system, ("true",))

    torch.save({"payload": RunsTrue()}, tmp_path / "bad.pt")  # a real torch zip whose pickle asks for os.system
    proc = subprocess.run(
        [sys.executable, "-m", "classroom", "evaluate", "--checkpoint", "bad.pt"], capture_output=True, text=True, cwd=tmp_path,
        env={"PYTHONPATH": str(__import__("pathlib").Path(__file__).parent.parent), "PATH": "/usr/bin:/bin"}, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    assert "refused: it asks to load code (posix.system)" in proc.stderr


def test_evaluate_reads_the_tutorials_own_save_format(tmp_path, capsys):
    """`torch.save(net.state_dict(), "cifar_net.pth")`, as the tutorial ends: the CLI evaluates it (here on shapes)."""
    from classroom.models import build

    torch.save(build("net").state_dict(), tmp_path / "cifar_net.pth")
    argv = ["evaluate", "--checkpoint", str(tmp_path / "cifar_net.pth"), "--data", "shapes", "--data-dir", str(tmp_path)]
    assert main(argv) in (0, None)
    out = capsys.readouterr().out
    assert "Accuracy of the network on the 2000 test images" in out and out.count("Accuracy for class:") == 10


def test_train_without_data_trains_on_cifar10_when_it_is_there(tmp_path, monkeypatch, capsys):
    from tests.test_data import trust_fake_cifar10, write_fake_cifar10

    trust_fake_cifar10(tmp_path / "data", write_fake_cifar10(tmp_path / "data"), monkeypatch)
    assert main(["train", "--dry-run", "--json", "--data-dir", str(tmp_path / "data")]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out.splitlines()[-1])["data"] == "cifar10" and captured.err == ""


def test_train_without_data_or_cifar10_says_it_falls_back_to_shapes(tmp_path, capsys):
    assert main(["train", "--dry-run", "--json", "--data-dir", str(tmp_path / "empty")]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out.splitlines()[-1])["data"] == "shapes (synthetic)"
    assert captured.err.splitlines() == [
        f"python -m classroom: CIFAR-10 is not in {tmp_path / 'empty'}, so this trains on the synthetic shapes set "
        f"(get CIFAR-10: python -m classroom download --data-dir {tmp_path / 'empty'}; choose a set: --data)"
    ]


def run_cli(*argv: str, cwd) -> subprocess.CompletedProcess:
    """python -m classroom in a fresh process, as a user types it."""
    root = str(__import__("pathlib").Path(__file__).parent.parent)
    env = {"PYTHONPATH": root, "PATH": "/usr/bin:/bin", "CUDA_VISIBLE_DEVICES": ""}  # no GPU, even on a GPU machine
    argv = [sys.executable, "-m", "classroom", *argv]
    return subprocess.run(argv, capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


HAS_MPS = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def missing_devices() -> list[str]:
    """Devices this machine lacks: a GPU number past its last always, cuda and mps where there are none."""
    return [f"cuda:{torch.cuda.device_count()}", *([] if torch.cuda.is_available() else ["cuda"]), *([] if HAS_MPS else ["mps"])]


@pytest.mark.parametrize("command", [["train", "--data", "shapes"], ["evaluate", "--checkpoint", "any.pt"]])
@pytest.mark.parametrize("device", missing_devices())
def test_a_device_this_machine_lacks_is_one_line_and_exit_2(capsys, command, device):
    with pytest.raises(SystemExit) as exit_:
        sys.exit(main([*command, "--device", device]))
    assert exit_.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # refused before any data was loaded or anything trained
    has = ", ".join(["cpu", *(f"cuda:{i}" for i in range(torch.cuda.device_count())), *(["mps"] if HAS_MPS else [])])
    assert captured.err.splitlines() == [
        f"python -m classroom: error: device: {device} is not available on this machine, which has: {has} "
        "(use --device cpu, or auto for the fastest)"
    ]


def test_evaluate_refuses_an_unknown_device_name_in_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        sys.exit(main(["evaluate", "--checkpoint", "any.pt", "--device", "tpu"]))
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "python -m classroom: error: device: unknown device 'tpu'; choose one of auto, cpu, cuda, mps"
    ]


@pytest.mark.parametrize("command", [["train", "--data", "shapes"], ["evaluate", "--checkpoint", "any.pt"]])
def test_cuda_on_a_machine_without_it_prints_no_traceback(tmp_path, command):
    """The issue's report, as typed: a fresh process, no GPU visible."""
    proc = run_cli(*command, "--device", "cuda", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.splitlines() == [
        f"python -m classroom: error: device: cuda is not available on this machine, which has: cpu{', mps' if HAS_MPS else ''} "
        "(use --device cpu, or auto for the fastest)"
    ]


def test_a_dry_run_leaves_the_trained_checkpoint_byte_for_byte(tmp_path, capsys):
    trained = tmp_path / "checkpoints" / "net.pt"
    trained.parent.mkdir()
    trained.write_bytes(b"a model that took an hour")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert main(["train", "--data", "shapes", "--dry-run", "--json"]) == 0
    assert trained.read_bytes() == b"a model that took an hour"
    out = capsys.readouterr().out.splitlines()
    dry = tmp_path / "checkpoints" / "net.dry-run.pt"
    assert json.loads(out[-1])["checkpoint"] == "checkpoints/net.dry-run.pt" and dry.is_file()
    assert "Saved the model to checkpoints/net.dry-run.pt (a dry run never writes checkpoints/net.pt)" in out
    # The dry run's own checkpoint is all it wrote here (shapes needs no data folder or decoded cache).
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted([*before, "net.dry-run.pt"])


def test_a_batch_size_the_presets_rate_was_not_tuned_for_is_warned_about(capsys):
    assert main(["train", "--data", "shapes", "--dry-run", "--batch-size", "64"]) == 0
    assert capsys.readouterr().err.splitlines() == [
        "python -m classroom: warning: the tutorial preset's learning rate 0.001 was tuned for batch 4, not 64, and "
        "may learn little; try --lr 0.016 (scaled with the batch) or --batch-size 4"
    ]
    assert main(["train", "--preset", "tutorial-fast", "--data", "shapes", "--dry-run", "--batch-size", "512"]) == 0
    assert "try --lr 0.016 (scaled with the batch) or --batch-size 128" in capsys.readouterr().err  # Adam: the square root
    assert main(["train", "--preset", "tutorial-fast", "--data", "shapes", "--dry-run", "--batch-size", "32"]) == 0
    assert "not 32, and may be too high for it; try --lr 0.004 (scaled" in capsys.readouterr().err
    for quiet in (["--batch-size", "64", "--lr", "0.02"], ["--batch-size", "4"], []):  # a chosen rate, the tuned batch
        assert main(["train", "--data", "shapes", "--dry-run", *quiet]) == 0
        assert capsys.readouterr().err == "", quiet


def test_the_warnings_suggestion_learns_where_the_presets_rate_does_not():
    """The issue's run: tutorial, 1 epoch at batch 64 on shapes ends at chance (9-12 % over seeds 0-4); the suggested
    --lr 0.016 learns (23-45 %, 2026-11-28, 2-core shared machine)."""
    dataset = data.load("shapes", "data")
    as_is = train(preset("tutorial", batch_size=64, epochs=1), dataset).evaluation.accuracy
    suggested = train(preset("tutorial", batch_size=64, epochs=1, lr=0.016), dataset).evaluation.accuracy
    assert as_is < 0.15 and suggested > 0.2


def test_tutorial_fast_learns_on_shapes():
    """Measured (2026-11-28, seeds 0-4, 2-core shared machine): 84.4-88.2 % on shapes, where the tutorial preset gets
    62-82 % in several times the time; the Nesterov SGD preset before it ended anywhere between 17 % and 77 %."""
    result = train(preset("tutorial-fast"), data.load("shapes", "data"))
    assert result.evaluation.accuracy > 0.75, result.evaluation.accuracy
