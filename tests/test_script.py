"""The generated standalone script: valid Python, faithful to the config, and it trains a few batches on an image folder."""

import ast
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from classroom import script
from classroom.config import ConfigError, TrainConfig, preset


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
    ast.parse(source)
    assert f"default={config.batch_size})" in source and f"default={config.epochs})" in source
    assert f"lr={config.lr!r}" in source
    assert ("RandomHorizontalFlip" in source) == config.augment
    crop = f'RandomCrop(32, padding={config.translate}, padding_mode="reflect")'  # the engine's shift, as torchvision
    assert (crop in source) == (config.augment and config.translate > 0)
    assert ("net.start_epoch(epoch + 1, args.epochs)" in source) == (config.model == "fast-cnn")
    assert ("images.flip(3)" in source) == config.tta
    assert ("LambdaLR" in source) == (config.schedule == "onecycle")


def test_the_tutorial_script_keeps_the_tutorials_net_and_printed_lines():
    source = script.script(preset("tutorial"))
    assert "self.conv1 = nn.Conv2d(3, 6, 5)" in source and "self.fc3 = nn.Linear(84, 10)" in source
    assert "optim.SGD(groups, lr=0.001, momentum=0.9)" in source
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
