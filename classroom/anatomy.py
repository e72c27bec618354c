"""The tutorial Net taken apart: its layers' output shapes and parameters, conv filters, feature maps, top-k."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from classroom.config import TUTORIAL_MEAN, TUTORIAL_STD
from classroom.data import normalize
from classroom.models import Net

MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # an image for a 32x32 classifier needs far less than this


@dataclass(frozen=True)
class Layer:
    """One step of Net.forward, what it produced and what it learns."""

    step: str  # the code of the step, as in Net.forward
    kind: str
    out_shape: tuple[int, ...]
    parameters: int


def steps(net: Net) -> list[tuple[str, nn.Module | None, object]]:
    """Net.forward unrolled: (code, module or None, function) in the order forward runs them."""
    return [
        ("self.conv1(x)", net.conv1, net.conv1),
        ("F.relu(x)", None, F.relu),
        ("self.pool(x)", net.pool, net.pool),
        ("self.conv2(x)", net.conv2, net.conv2),
        ("F.relu(x)", None, F.relu),
        ("self.pool(x)", net.pool, net.pool),
        ("torch.flatten(x, 1)", None, lambda x: torch.flatten(x, 1)),
        ("self.fc1(x)", net.fc1, net.fc1),
        ("F.relu(x)", None, F.relu),
        ("self.fc2(x)", net.fc2, net.fc2),
        ("F.relu(x)", None, F.relu),
        ("self.fc3(x)", net.fc3, net.fc3),
    ]


def to_input(image: torch.Tensor, mean=TUTORIAL_MEAN, std=TUTORIAL_STD) -> torch.Tensor:
    """uint8 [3, 32, 32] -> the normalised float batch [1, 3, 32, 32] the net takes."""
    return normalize(image.unsqueeze(0), mean, std)


@torch.no_grad()
def layers(net: Net, x: torch.Tensor) -> tuple[list[Layer], dict[str, torch.Tensor]]:
    """Run x through Net.forward step by step: a row per step, and the activations after conv1+relu and conv2+relu."""
    rows, maps = [], {}
    for code, module, fn in steps(net):
        x = fn(x)
        kind = type(module).__name__ if module is not None else code.split("(")[0]
        params = sum(p.numel() for p in module.parameters()) if module is not None and code != "self.pool(x)" else 0
        rows.append(Layer(code, kind, tuple(x.shape), params))
        if code == "F.relu(x)" and len(maps) < 2 and x.dim() == 4:
            maps["conv1" if not maps else "conv2"] = x[0].clone()
    return rows, maps


def filters(conv: nn.Conv2d) -> torch.Tensor:
    """The conv's weights as RGB pictures [out, k, k, 3] in [0, 1], each stretched to its own range so its pattern shows."""
    w = conv.weight.detach().float().cpu()
    if w.shape[1] != 3:
        w = w.mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)
    low = w.amin(dim=(1, 2, 3), keepdim=True)
    high = w.amax(dim=(1, 2, 3), keepdim=True)
    return ((w - low) / (high - low).clamp_min(1e-8)).permute(0, 2, 3, 1)


@torch.no_grad()
def top_k(
    model: nn.Module, image: torch.Tensor, classes, mean=TUTORIAL_MEAN, std=TUTORIAL_STD, k: int = 3
) -> list[tuple[str, float]]:
    """The k most probable classes for one uint8 image, with softmax probabilities."""
    model.eval()
    probs = F.softmax(model(to_input(image, mean, std)).float(), dim=1)[0]
    values, indices = probs.topk(min(k, len(classes)))
    return [(classes[i], v) for i, v in zip(indices.tolist(), values.tolist())]


def newest_checkpoint(manager, models: tuple[str, ...] = ("net", "wide-net")):
    """(snapshot, checkpoint path) of the newest finished run of a Net-shaped model, or None when there is none yet."""
    for run in manager.list():  # newest first
        if run.status == "finished" and run.config.model in models and (path := manager.checkpoint_path(run.id)):
            return run, path
    return None


def image_from_upload(content: bytes, name: str) -> torch.Tensor:
    """An uploaded file -> uint8 [3, 32, 32]; DataError for files too large, empty or not images (nothing else is run)."""
    from classroom.data import DataError, decode_image

    if len(content) > MAX_UPLOAD_BYTES:
        raise DataError(f"{name} is {len(content) / 2**20:.1f} MB; images up to {MAX_UPLOAD_BYTES // 2**20} MB are accepted")
    return decode_image(content, name)
