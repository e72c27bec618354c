"""A forward pass whose graph depends on the data: Python loops and branches, recorded as they run."""

from __future__ import annotations

import torch


def grow_until_big(x: torch.Tensor, w: torch.Tensor, limit: float = 10.0, max_steps: int = 12) -> torch.Tensor:
    """Multiply by w until the values are big (a loop count set by x), then branch on the sign."""
    h = x * w
    steps = 0
    while h.abs().sum() < limit and steps < max_steps:  # a small input needs more passes through the loop
        h = h * w
        steps += 1
    if h.sum() > 0:  # the branch taken depends on the data, too
        return torch.relu(h).sum()
    return torch.tanh(h).sum()


def loop_steps(x: torch.Tensor, w: torch.Tensor, limit: float = 10.0, max_steps: int = 12) -> int:
    """How many times grow_until_big's loop ran for this input (the same rule, no graph recorded)."""
    with torch.no_grad():
        h, steps = x * w, 0
        while h.abs().sum() < limit and steps < max_steps:
            h, steps = h * w, steps + 1
    return steps


def tanh_rnn(sequence: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The smallest recurrent net: one state, updated once per item, so the graph grows with the sequence."""
    h = torch.tensor(0.0)
    for item in sequence:
        h = torch.tanh(w * h + item)
    return h
