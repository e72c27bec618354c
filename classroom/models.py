"""The tutorial's Net exactly as written, a widened Net (the tutorial's exercise) and a fast CNN; a registry by name."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    """The CNN of the PyTorch CIFAR-10 tutorial, layer for layer."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)  # flatten all dimensions except batch
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        x = self.fc3(x)
        return x


class WideNet(Net):
    """The tutorial's exercise: Net with conv1 and conv2 widened (6 -> 32 and 16 -> 64 channels)."""

    def __init__(self, c1: int = 32, c2: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(3, c1, 5)
        self.conv2 = nn.Conv2d(c1, c2, 5)
        self.fc1 = nn.Linear(c2 * 5 * 5, 120)


class ConvBlock(nn.Module):
    """conv -> pool -> BN -> GELU -> conv -> BN -> GELU: one resolution stage of the fast CNN."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.norm1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(c_out)

    def forward(self, x):
        x = F.max_pool2d(self.conv1(x), 2)  # pool before the norm: BN and GELU run on 4x fewer values
        x = F.gelu(self.norm1(x))
        return F.gelu(self.norm2(self.conv2(x)))


class FastCNN(nn.Module):
    """A small VGG-style net after the airbench family: a wide stem, three pooled stages, a scaled linear head."""

    def __init__(self, widths: tuple[int, int, int] = (64, 128, 256), num_classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.GELU())
        self.stages = nn.Sequential(
            ConvBlock(32, widths[0]), ConvBlock(widths[0], widths[1]), ConvBlock(widths[1], widths[2])
        )
        self.head = nn.Linear(widths[2], num_classes, bias=False)
        self.scale = 1 / 9  # a small logit scale keeps early steps calm with a high learning rate

    def forward(self, x):
        x = self.stages(self.stem(x))
        x = F.adaptive_max_pool2d(x, 1).flatten(1)
        return self.head(x) * self.scale


MODELS = {"net": Net, "wide-net": WideNet, "fast-cnn": FastCNN}
DESCRIPTIONS = {
    "net": "the tutorial's CNN: 2 conv + 3 linear layers",
    "wide-net": "the tutorial's exercise: Net with wider conv1/conv2",
    "fast-cnn": "a fast VGG-style CNN with BatchNorm (airbench ideas)",
}


def build(name: str, num_classes: int = 10) -> nn.Module:
    """A freshly initialised model by registry name."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    model = MODELS[name]() if name != "fast-cnn" else FastCNN(num_classes=num_classes)
    if num_classes != 10 and hasattr(model, "fc3"):
        model.fc3 = nn.Linear(model.fc3.in_features, num_classes)
    return model


def parameter_count(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
