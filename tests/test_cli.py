"""The command line: the tutorial's output format, --json, exit codes with one clear line."""

import json
import os
import re
import subprocess
import sys

import pytest
import torch

from classroom import data
from classroom.__main__ import main


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data._cache.clear()


def test_train_prints_the_tutorials_lines_and_json(capsys):
    assert main(["train", "--data", "shapes", "--dry-run", "--json", "--out", "ckpt"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"\[1,     1\] loss: \d\.\d{3}", out[0])
    assert re.fullmatch(r"Accuracy of the network on the \d+ test images: \d+ %", out[out.index("Finished Training") + 1])
    class_lines = [line for line in out if line.startswith("Accuracy for class: ")]
    assert len(class_lines) == 10 and re.fullmatch(r"Accuracy for class: circle is \d+\.\d %", class_lines[0])
    result = json.loads(out[-1])
    assert set(result) >= {"test_accuracy", "train_seconds", "epochs", "device", "per_class_accuracy"}
    assert 0 <= result["test_accuracy"] <= 1 and result["device"] == "cpu" and len(result["per_class_accuracy"]) == 10


def test_evaluate_reloads_the_saved_model(capsys):
    main(["train", "--data", "shapes", "--dry-run", "--json", "--out", "ckpt"])
    trained = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert main(["evaluate", "--checkpoint", trained["checkpoint"]]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first == f"Accuracy of the network on the 2000 test images: {int(100 * trained['test_accuracy'])} %"


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
        env={"PYTHONPATH": str(__import__("pathlib").Path(__file__).parent.parent), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    assert "refused: it asks to load code (posix.system)" in proc.stderr
