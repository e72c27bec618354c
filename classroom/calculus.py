"""Functions of one variable for the autograd lesson: autograd's derivative, a finite-difference check, gradient descent."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Function:
    """A function of x, its code as the student reads it, and a sensible x range."""

    label: str
    code: str  # the expression fn evaluates, written as torch code
    fn: Callable[[torch.Tensor], torch.Tensor]
    low: float = -3.0
    high: float = 3.0


FUNCTIONS = {
    f.label: f
    for f in (
        Function("x·sin(x)", "x * torch.sin(x)", lambda x: x * torch.sin(x), -6.0, 6.0),
        Function("x²", "x ** 2", lambda x: x**2),
        Function("sin(x)", "torch.sin(x)", torch.sin, -6.0, 6.0),
        Function("x³ − 3x", "x ** 3 - 3 * x", lambda x: x**3 - 3 * x, -2.5, 2.5),
        Function("exp(−x²/2)", "torch.exp(-x ** 2 / 2)", lambda x: torch.exp(-(x**2) / 2)),
        Function("log(1 + eˣ) (softplus)", "torch.log(1 + torch.exp(x))", lambda x: torch.log(1 + torch.exp(x)), -4.0, 4.0),
    )
}


def gradient_at(fn: Callable, x0: float) -> tuple[float, float, torch.Tensor]:
    """(f(x0), df/dx at x0 by autograd, the output tensor whose grad_fn records the graph)."""
    x = torch.tensor(float(x0), dtype=torch.float64, requires_grad=True)
    y = fn(x)
    (grad,) = torch.autograd.grad(y, x, retain_graph=True)
    return y.item(), grad.item(), y


def finite_difference(fn: Callable, x0: float, h: float = 1e-5) -> float:
    """The central difference (f(x0 + h) - f(x0 - h)) / 2h, in float64: the check autograd should agree with."""
    with torch.no_grad():
        x = torch.tensor(float(x0), dtype=torch.float64)
        return ((fn(x + h) - fn(x - h)) / (2 * h)).item()


def curve(fn: Callable, low: float, high: float, points: int = 201) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(xs, f(xs), f'(xs)): the derivative of the whole curve from one backward of f(xs).sum()."""
    xs = torch.linspace(low, high, points, dtype=torch.float64, requires_grad=True)
    ys = fn(xs)
    ys.sum().backward()  # each f(x_i) depends only on x_i, so d(sum)/dx_i is f'(x_i)
    return xs.detach(), ys.detach(), xs.grad


def gradient_descent(fn: Callable, x0: float, lr: float, steps: int) -> list[tuple[float, float, float]]:
    """[(x, f(x), f'(x))] for x0 and each step x <- x - lr * f'(x); stops early if x runs off to infinity."""
    x = torch.tensor(float(x0), dtype=torch.float64, requires_grad=True)
    path = []
    for _ in range(steps + 1):
        y = fn(x)
        y.backward()
        path.append((x.item(), y.item(), x.grad.item()))
        if not all(map(torch.isfinite, (x, y, x.grad))) or abs(x.item()) > 1e6:
            break
        with torch.no_grad():
            x -= lr * x.grad
        x.grad = None
    return path
