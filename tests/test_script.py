"""The generated standalone script: valid Python, faithful to the config, trains what the lab trains, runs on an image folder."""

import ast
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from classroom import data, script
from classroom.config import ConfigError, TrainConfig, preset
from classroom.evaluation import accuracy_lines
from classroom.training import train


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """An ImageFolder tree of 3 classes of random 40x40 PNGs (resized to 32x32 by the script)."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("test", 4)):
        for name in ("cats", "dogs", "owls"):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return root


@pytest.mark.parametrize("name", ["tutorial", "tutorial-fast", "fast-cnn"])
def test_every_preset_gives_valid_python_with_its_settings(name):
    config = preset(name)
    source = script.script(config)
    nodes = list(ast.walk(ast.parse(source)))
    imported = {a.name for node in nodes if isinstance(node, ast.Import) for a in node.names}
    imported |= {node.module for node in nodes if isinstance(node, ast.ImportFrom)}
    assert {module.split(".")[0] for module in imported} == {"argparse", "math", "os", "torch", "torchvision"}  # no classroom
    assert f"default={config.batch_size})" in source and f"default={config.epochs})" in source
    assert f"lr={config.lr!r}" in source
    assert ("crop_and_flip(inputs" in source) == config.augment
    assert (f"PAD = {config.translate}  #" in source) == config.augment
    assert ("net.start_epoch(epoch + 1, args.epochs)" in source) == (config.model == "fast-cnn")
    assert ("images.flip(3)" in source) == config.tta
    assert ("learning_rate(epoch * steps + i" in source) == (config.schedule == "onecycle")


def test_the_tutorial_script_keeps_the_tutorials_net_and_printed_lines():
    source = script.script(preset("tutorial"))
    assert "self.conv1 = nn.Conv2d(3, 6, 5)" in source and "self.fc3 = nn.Linear(84, 10)" in source
    assert "optim.SGD(groups, lr=0.001, momentum=0.9, fused=fused)" in source
    assert "Accuracy of the network on the" in source and "Accuracy for class:" in source
    assert script.filename(preset("fast-cnn")) == "train_fast_cnn.py"


def test_an_invalid_config_is_refused():
    with pytest.raises(ConfigError, match="epochs"):
        script.script(TrainConfig(epochs=0))


@pytest.mark.parametrize(
    "config",
    [
        TrainConfig(data="shapes", batch_size=4, log_interval=1),
        preset("fast-cnn", batch_size=8, epochs=2, log_interval=1),
    ],
    ids=["net", "fast-cnn"],
)
def test_the_generated_script_trains_a_few_batches_on_an_image_folder(config, image_folder, tmp_path):
    path = tmp_path / script.filename(config)
    path.write_text(script.script(config))
    cmd = [sys.executable, str(path), "--data", str(image_folder), "--max-batches", "2", "--workers", "0"]
    done = subprocess.run(cmd + ["--save", str(tmp_path / "net.pth")], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert "[1,     1] loss:" in done.stdout and "Finished Training" in lines
    assert "Accuracy of the network on the 12 test images:" in done.stdout
    assert [line.split(" is ")[0] for line in lines if line.startswith("Accuracy for class")] == [
        "Accuracy for class: cats ",
        "Accuracy for class: dogs ",
        "Accuracy for class: owls ",
    ]
    assert (tmp_path / "net.pth").stat().st_size > 1000


@pytest.fixture(scope="module")
def ten_classes(tmp_path_factory):
    """An ImageFolder tree of 10 classes of random 32x32 PNGs (no resizing on either side): 301 training images,
    so a last batch of one at batch 4 (dropped) and partial last batches at 128 and 256; 20 test images."""
    root = tmp_path_factory.mktemp("ten-classes")
    rng = np.random.default_rng(1)
    for split, n in (("train", 30), ("test", 2)):
        for c in range(10):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(n + (split == "train" and c == 0)):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return root


@pytest.mark.parametrize("name", ["tutorial", "tutorial-fast", "fast-cnn"])
def test_the_script_trains_the_very_weights_the_lab_trains(name, ten_classes, tmp_path):
    """The whole preset (every epoch and step) from one seed, in the lab and as the script a student takes home.

    Compared exactly: both do the same float32 (and, for fast-cnn on a CPU with AMX or AVX-512 BF16, bf16) operations
    in the same order on the same machine, so the weights are equal bit for bit (measured). A tolerance would only
    hide a difference in the recipe: with inputs one rounding apart (x / 255 - mean) / std against the old
    (x - 255 mean) / (255 std), fast-cnn's weights came out up to 72 % apart after its 12 steps (bf16, BatchNorm biases
    at lr 24), as far apart as a changed recipe leaves them."""
    config = preset(name, data=f"folder:{ten_classes}", device="cpu", data_dir=str(tmp_path))
    lab = train(config, data.load(config.data, config.data_dir))
    assert lab.status == "finished"
    path = tmp_path / script.filename(config)
    path.write_text(script.script(config))
    cmd = [sys.executable, str(path), "--data", str(ten_classes), "--device", "cpu", "--workers", "0", "--save", "net.pth"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    weights = torch.load(tmp_path / "net.pth", weights_only=True)
    torch.testing.assert_close(weights, lab.model.state_dict(), rtol=0, atol=0)
    printed = done.stdout.splitlines()
    assert printed[printed.index("Finished Training") + 1 :] == accuracy_lines(lab.evaluation)  # evaluated alike too
