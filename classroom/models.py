"""The tutorial's Net exactly as written, a widened Net (the tutorial's exercise) and a fast CNN; a registry by name."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from classroom.locale import N_


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
        self.norm1 = _norm(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.norm2 = _norm(c_out)
        for conv in (self.conv1, self.conv2):
            _identity_init(conv)

    def forward(self, x):
        x = F.max_pool2d(self.conv1(x), 2)  # pool before the norm: BN and GELU run on 4x fewer values
        x = F.gelu(self.norm1(x))
        return F.gelu(self.norm2(self.conv2(x)))


def _norm(channels: int) -> nn.BatchNorm2d:
    """BatchNorm with a frozen scale of 1: only the bias learns (with a boosted learning rate, see lr_scales).

    With the scale frozen, each BN-conv pair is scale-invariant and weight decay simply sets the effective
    learning rate; fewer moving parts, faster convergence in short runs (airbench). Momentum 0.4 lets the
    running statistics follow the fast-changing weights of a run of a few hundred steps."""
    norm = nn.BatchNorm2d(channels, momentum=0.4, eps=1e-12)
    norm.weight.requires_grad_(False)
    return norm


def _identity_init(conv: nn.Conv2d) -> None:
    """Make the first in_channels filters a pass-through (Dirac) on top of the default random init.

    A fresh deep net then starts close to the identity map: signal and gradient reach every layer from step 1,
    which matters when the whole run is a few epochs."""
    with torch.no_grad():
        k = min(conv.in_channels, conv.out_channels)
        nn.init.dirac_(conv.weight[:k])


class FastCNN(nn.Module):
    """A small VGG-style CNN after the airbench family (Keller Jordan, 2024), written from its ideas.

    whiten (frozen 2x2 patch-whitening conv) -> GELU -> three stages (conv, pool, BN, GELU, conv, BN, GELU)
    -> global max pool -> linear head scaled by 1/9. Call prepare(images) once before training so the first
    layer whitens the data set's 2x2 patches; without it that layer is a fixed random projection."""

    def __init__(self, widths: tuple[int, int, int] = (48, 96, 192), num_classes: int = 10):
        super().__init__()
        # 2x2x3 = 12 patch dimensions; each eigenvector is used with both signs so that the GELU after it
        # keeps the whole signal: 24 channels.
        self.whiten = nn.Conv2d(3, 24, 2, padding=0, bias=True)
        self.whiten.weight.requires_grad_(False)  # frozen: it is computed from the data, not learned
        self.stages = nn.Sequential(ConvBlock(24, widths[0]), ConvBlock(widths[0], widths[1]), ConvBlock(widths[1], widths[2]))
        self.head = nn.Linear(widths[2], num_classes, bias=False)
        self.scale = 1 / 9  # small logits: a calm start even at a high learning rate
        # BatchNorm biases learn 64x faster than the conv weights: with the scale frozen they are the only
        # per-channel knobs, and a plain learning rate moves them too slowly. The whitening bias is not boosted.
        self.lr_scales = {n: 64.0 for n, p in self.stages.named_parameters(prefix="stages") if n.endswith(".bias")}

    @torch.no_grad()
    def prepare(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the first layer to whiten 2x2 patches of these (normalised) images: a free, data-dependent head start.

        Whitened inputs are decorrelated with unit variance, so the first trainable conv sees a well-conditioned
        problem; this layer alone buys several points of accuracy in a short run (airbench)."""
        x = images.float()
        patches = x.unfold(2, 2, 1).unfold(3, 2, 1).transpose(1, 3).reshape(-1, 3 * 2 * 2)  # (c, kh, kw) per row
        patches = patches - patches.mean(0)
        cov = patches.T @ patches / len(patches)
        eigenvalues, eigenvectors = torch.linalg.eigh(cov)
        filters = (eigenvectors.T / (eigenvalues + eps).sqrt().view(-1, 1)).reshape(12, 3, 2, 2)
        weight = torch.cat([filters, -filters])
        self.whiten.weight.copy_(weight.to(self.whiten.weight.dtype))
        self.whiten.bias.zero_()

    def start_epoch(self, epoch: int, epochs: int) -> None:
        """Train the whitening bias for the first third of the epochs, then freeze it (airbench).

        Frozen, nothing before the first 3x3 conv needs a gradient, so backward skips that conv's input
        gradient, the largest one in the net: ~11 % faster steps measured on a 2-core CPU (BENCHMARKS.md)."""
        self.whiten.bias.requires_grad_(epoch <= max(1, epochs // 3))

    def forward(self, x):
        x = F.gelu(self.whiten(x))  # 32x32 -> 31x31
        x = self.stages(x)  # -> 15 -> 7 -> 3
        x = F.adaptive_max_pool2d(x, 1).flatten(1)
        return self.head(x) * self.scale


MODELS = {"net": Net, "wide-net": WideNet, "fast-cnn": FastCNN}
DESCRIPTIONS = {  # N_: the lab shows them in its page's language (locale/)
    "net": N_("the tutorial's CNN: 2 conv + 3 linear layers"),
    "wide-net": N_("the tutorial's exercise: Net with wider conv1/conv2"),
    "fast-cnn": N_("a fast VGG-style CNN with BatchNorm (airbench ideas)"),
}


def build(name: str, num_classes: int = 10, generator: torch.Generator | None = None) -> nn.Module:
    """A freshly initialised model by registry name; with a (CPU) generator, its initial weights are drawn from it alone."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    if generator is None:
        return _construct(name, num_classes)
    # Shapes only on the meta device: torch's global generator, which any other thread may reseed or draw from
    # meanwhile, is never touched; then every weight is drawn from the run's own generator.
    with torch.device("meta"):
        model = _construct(name, num_classes)
    return initialise(model.to_empty(device="cpu"), generator)


def _construct(name: str, num_classes: int) -> nn.Module:
    model = MODELS[name]() if name != "fast-cnn" else FastCNN(num_classes=num_classes)
    if num_classes != 10 and hasattr(model, "fc3"):
        model.fc3 = nn.Linear(model.fc3.in_features, num_classes)
    return model


@torch.no_grad()
def initialise(model: nn.Module, generator: torch.Generator) -> nn.Module:
    """Give every layer the initial values torch's reset_parameters would, drawing from generator, in layer order.

    Layer order is construction order for the 10-class Net and FastCNN: a generator seeded with s gives them the
    weights torch.manual_seed(s) and the constructor give (the tutorial's script starts from the same Net)."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
            if module.bias is not None:
                fan_in, _ = nn.init._calculate_fan_in_and_fan_out(module.weight)
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                nn.init.uniform_(module.bias, -bound, bound, generator=generator)
        elif isinstance(module, nn.BatchNorm2d):
            module.reset_parameters()  # scale 1, bias 0, fresh running statistics: nothing random
        elif any(True for _ in module.parameters(recurse=False)) or any(True for _ in module.buffers(recurse=False)):
            raise TypeError(f"initialise: no rule for {type(module).__name__}'s parameters")
    for module in model.modules():
        if isinstance(module, ConvBlock):  # its pass-through filters go on top of the random draw, as in __init__
            for conv in (module.conv1, module.conv2):
                _identity_init(conv)
    return model


def parameter_count(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
