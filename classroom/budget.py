"""What a run will cost before it starts: memory from the model's activations at the configured batch size."""

from __future__ import annotations

import functools

import torch

from classroom.config import TrainConfig
from classroom.models import build

FIXED_BYTES = 512 * 2**20  # the process's share beyond activations: torch's workspaces, the optimizer, one eval batch
ACTIVATION_FACTOR = 1.5  # bytes kept per byte of fp32 layer output: what backward saves, and gradients in flight


@functools.lru_cache(maxsize=16)
def activation_bytes_per_image(model: str) -> int:
    """The fp32 bytes every layer of the model outputs for one image, counted on the meta device (no memory used)."""
    net = build(model).to("meta").train()
    total = 0

    def count(_module, _inputs, output):
        nonlocal total
        total += output.numel() * 4

    leaves = [m for m in net.modules() if not any(m.children())]
    hooks = [m.register_forward_hook(count) for m in leaves]
    try:
        with torch.no_grad():
            net(torch.empty(1, 3, 32, 32, device="meta"))
    finally:
        for hook in hooks:
            hook.remove()
    return total


def estimate_bytes(config: TrainConfig) -> int:
    """About how much memory a training step of this config takes (measured against peak RSS in BENCHMARKS.md)."""
    return FIXED_BYTES + int(ACTIVATION_FACTOR * activation_bytes_per_image(config.model) * config.batch_size)


def largest_batch(config: TrainConfig, limit_bytes: int) -> int:
    """The biggest batch size of this model that fits the limit (0 if none does)."""
    per_image = ACTIVATION_FACTOR * activation_bytes_per_image(config.model)
    return max(0, int((limit_bytes - FIXED_BYTES) // per_image))


def refusal(config: TrainConfig, limit_bytes: int) -> str | None:
    """Why this run is refused for its memory, or None when it fits."""
    need = estimate_bytes(config)
    if need <= limit_bytes:
        return None
    fits = largest_batch(config, limit_bytes)
    way_out = f"lower the batch size to {fits} or less" if fits else "choose a smaller model"
    return (
        f"this run would need about {need / 2**30:.1f} GB of memory ({config.model} at batch {config.batch_size}), "
        f"more than the {limit_bytes / 2**30:.1f} GB a run may use on this server: {way_out}"
    )
