"""The tutorial Net taken apart: its layers' output shapes and parameters, conv filters, one convolution output worked
out by hand, every layer's activations, top-k."""

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


CONVOLUTIONS = ("conv1", "conv2")


@dataclass(frozen=True)
class Convolution:
    """One output value of a conv layer, worked out by hand from the real tensors and checked against PyTorch's."""

    layer: str  # "conv1" or "conv2"
    channel: int  # output channel (filter)
    row: int  # position in the output map
    col: int
    inputs: torch.Tensor  # [C_in, H, W]: what the layer reads (the normalised image, or pool(relu(conv1)))
    top: int  # the window's top-left corner in `inputs` (padding included: negative for padded layers)
    left: int
    window: torch.Tensor  # [C_in, k, k]: the part of `inputs` under the kernel
    kernel: torch.Tensor  # [C_in, k, k]: the filter's weights
    products: torch.Tensor  # window * kernel, elementwise (float64, so the hand sum adds no rounding of its own)
    per_channel: torch.Tensor  # [C_in]: the sum of each input channel's products
    bias: float
    total: float  # products.sum() + bias: the value by hand
    output: torch.Tensor  # [H_out, W_out]: this channel's map as the layer computed it (before ReLU)

    @property
    def pytorch(self) -> float:
        """The layer's own value at (row, col)."""
        return float(self.output[self.row, self.col])

    @property
    def code(self) -> str:
        """Where that value sits in the layer's output, as PyTorch indexes it."""
        return f"self.{self.layer}(x)[0, {self.channel}, {self.row}, {self.col}]"


@torch.no_grad()
def conv_input(net: Net, x: torch.Tensor, layer: str) -> torch.Tensor:
    """What `layer` reads in Net.forward for the batch x [1, 3, 32, 32]: x itself for conv1, pool(relu(conv1(x))) for conv2."""
    if layer == "conv1":
        return x[0]
    if layer == "conv2":
        return net.pool(F.relu(net.conv1(x)))[0]
    raise ValueError(f"layer must be one of {CONVOLUTIONS}, not {layer!r}")


@torch.no_grad()
def convolution_at(net: Net, x: torch.Tensor, layer: str, channel: int, row: int, col: int) -> Convolution:
    """The output of `layer`'s filter `channel` at (row, col) for the batch x [1, 3, 32, 32], summed by hand."""
    conv = getattr(net, layer) if layer in CONVOLUTIONS else None
    if not isinstance(conv, nn.Conv2d) or conv.groups != 1 or conv.dilation != (1, 1):
        raise ValueError(f"{layer!r} is not a plain convolution of Net")
    if not 0 <= channel < conv.out_channels:
        raise IndexError(f"{layer} has {conv.out_channels} output channels; there is no channel {channel}")
    inputs = conv_input(net, x, layer).float()
    output = conv(inputs.unsqueeze(0))[0, channel]
    if not (0 <= row < output.shape[0] and 0 <= col < output.shape[1]):
        raise IndexError(f"{layer}'s maps are {output.shape[0]}x{output.shape[1]}; ({row}, {col}) is outside")
    (kh, kw), (sh, sw), (ph, pw) = conv.kernel_size, conv.stride, conv.padding
    padded = F.pad(inputs, (pw, pw, ph, ph))  # zeros, as Conv2d's default padding_mode
    window = padded[:, row * sh : row * sh + kh, col * sw : col * sw + kw]
    kernel = conv.weight[channel].detach().float()
    products = window.double() * kernel.double()
    bias = float(conv.bias[channel]) if conv.bias is not None else 0.0
    return Convolution(
        layer, channel, row, col, inputs, row * sh - ph, col * sw - pw, window, kernel, products,
        products.sum(dim=(1, 2)), bias, float(products.sum()) + bias, output,
    )  # fmt: skip


@dataclass(frozen=True)
class Activation:
    """What one step of Net.forward (or the softmax after it) gave for one image."""

    name: str  # "conv1", "relu", "pool", ..., "fc3 (logits)", "softmax"
    code: str  # the step as written in Net.forward
    value: torch.Tensor  # the output for the image: batch dimension dropped
    shape: tuple[int, ...]  # the output's shape as PyTorch has it, batch dimension included


@torch.no_grad()
def activations(net: Net, x: torch.Tensor) -> list[Activation]:
    """x [1, 3, 32, 32] through Net.forward step by step, every step's output kept, then the softmax of the logits."""
    out = []
    for code, _, fn in steps(net):
        x = fn(x)
        name = code.removeprefix("self.").removeprefix("F.").removeprefix("torch.").split("(")[0]
        out.append(Activation("fc3 (logits)" if name == "fc3" else name, code, x[0].clone(), tuple(x.shape)))
    probs = F.softmax(x.float(), dim=1)
    out.append(Activation("softmax", "F.softmax(x, dim=1)", probs[0], tuple(probs.shape)))
    return out


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
