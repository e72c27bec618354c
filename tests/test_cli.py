"""The command line: the tutorial's output format, --json, exit codes with one clear line."""

import json
import os
import re
import subprocess
import sys

import pytest
import torch

from classroom import checkpoints, data
from classroom.__main__ import main


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
