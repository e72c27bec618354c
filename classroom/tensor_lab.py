"""The tensor playground: two tensors of chosen shapes, one operation, and the result or the shape error explained."""

from __future__ import annotations

from dataclasses import dataclass

import torch

MAX_DIMS = 4
MAX_SIZE = 12
OPERATIONS = {
    "a + b": "add, broadcasting",
    "a * b": "multiply elementwise, broadcasting",
    "a @ b": "matrix multiplication",
    "torch.cat([a, b], dim=0)": "join end to end along the first dimension (torch.stack would add a new one)",
    "a.reshape(b.shape)": "same values, new shape",
    "a.sum(dim=0)": "sum away the first dimension",
}


@dataclass(frozen=True)
class Outcome:
    """What running the operation gave: a result, or torch's error and the rule that was broken."""

    code: str
    a: torch.Tensor
    b: torch.Tensor
    result: torch.Tensor | None
    error: str  # torch's own message, first line
    explanation: str


def parse_shape(text: str) -> tuple[int, ...]:
    """'2, 3' -> (2, 3); ValueError with a readable reason for anything else."""
    parts = [p.strip() for p in text.replace("x", ",").replace("×", ",").replace("(", "").replace(")", "").split(",")]
    parts = [p for p in parts if p]
    if not parts:
        raise ValueError("write a shape as sizes separated by commas, like 2, 3")
    if len(parts) > MAX_DIMS:
        raise ValueError(f"at most {MAX_DIMS} dimensions here, got {len(parts)}")
    sizes = []
    for p in parts:
        if not p.isdigit():
            raise ValueError(f"{p!r} is not a whole number; write a shape like 2, 3")
        if not 1 <= int(p) <= MAX_SIZE:
            raise ValueError(f"each size must be between 1 and {MAX_SIZE}, got {p}")
        sizes.append(int(p))
    return tuple(sizes)


def make_inputs(shape_a: tuple[int, ...], shape_b: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """a counts up from 0, b counts up from 1: values small enough to check by eye."""
    a = torch.arange(_numel(shape_a), dtype=torch.float32).reshape(shape_a)
    b = torch.arange(1, _numel(shape_b) + 1, dtype=torch.float32).reshape(shape_b)
    return a, b


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def apply(operation: str, shape_a: tuple[int, ...], shape_b: tuple[int, ...]) -> Outcome:
    """Run one of OPERATIONS on fresh inputs; never raises for a shape problem."""
    if operation not in OPERATIONS:
        raise ValueError(f"unknown operation {operation!r}")
    a, b = make_inputs(shape_a, shape_b)
    ops = {
        "a + b": lambda: a + b,
        "a * b": lambda: a * b,
        "a @ b": lambda: a @ b,
        "torch.cat([a, b], dim=0)": lambda: torch.cat([a, b], dim=0),
        "a.reshape(b.shape)": lambda: a.reshape(b.shape),
        "a.sum(dim=0)": lambda: a.sum(dim=0),
    }
    try:
        result = ops[operation]()
    except RuntimeError as e:
        return Outcome(operation, a, b, None, str(e).strip().splitlines()[0], explain_error(operation, a.shape, b.shape))
    return Outcome(operation, a, b, result, "", explain_success(operation, a.shape, b.shape, result.shape))


def _fmt(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def broadcast_conflict(shape_a, shape_b) -> tuple[int, int, int] | None:
    """(dimension counted from the right, size in a, size in b) of the first pair that cannot broadcast, or None."""
    for k in range(1, min(len(shape_a), len(shape_b)) + 1):
        sa, sb = shape_a[-k], shape_b[-k]
        if sa != sb and sa != 1 and sb != 1:
            return k, sa, sb
    return None


def explain_error(operation: str, shape_a, shape_b) -> str:
    """The rule the shapes broke, in words, with the sizes that broke it."""
    if operation in ("a + b", "a * b"):
        k, sa, sb = broadcast_conflict(shape_a, shape_b) or (0, 0, 0)
        return (
            f"Broadcasting lines the shapes up from the right. At dimension -{k}, a has {sa} and b has {sb}: "
            "two sizes are compatible only when they are equal or one of them is 1."
        )
    if operation == "a @ b":
        if len(shape_a) == 1 and len(shape_b) == 1:
            return f"Two vectors multiply as a dot product, which needs equal lengths: a has {shape_a[0]}, b has {shape_b[0]}."
        inner_b = shape_b[0] if len(shape_b) == 1 else shape_b[-2]
        if shape_a[-1] != inner_b:
            return (
                f"a @ b needs a's last size to equal b's {'only' if len(shape_b) == 1 else 'second-to-last'} size: "
                f"a {_fmt(shape_a)} ends in {shape_a[-1]}, b {_fmt(shape_b)} offers {inner_b}. Try b.T, or swap a and b."
            )
        k, sa, sb = broadcast_conflict(shape_a[:-2], shape_b[:-2]) or (0, 0, 0)
        return (
            f"The batch dimensions in front of the matrices must broadcast: at batch dimension -{k}, a has {sa} and b has {sb}."
        )
    if operation.startswith("torch.cat"):
        if len(shape_a) != len(shape_b):
            return f"torch.cat joins tensors with the same number of dimensions: a has {len(shape_a)}, b has {len(shape_b)}."
        bad = next(i for i in range(1, len(shape_a)) if shape_a[i] != shape_b[i])
        return (
            f"torch.cat along dim 0 needs every other size to match: at dim {bad}, a has {shape_a[bad]} and b has {shape_b[bad]}."
        )
    if operation.startswith("a.reshape"):
        return (
            f"A reshape keeps every value, so the element count must stay the same: a {_fmt(shape_a)} holds {_numel(shape_a)} "
            f"values, the shape {_fmt(shape_b)} holds {_numel(shape_b)}."
        )
    return "the shapes do not fit this operation"


def explain_success(operation: str, shape_a, shape_b, shape_out) -> str:
    """How the result's shape came from the inputs' shapes."""
    if operation in ("a + b", "a * b"):
        if tuple(shape_a) == tuple(shape_b):
            return f"Same shapes: the operation pairs up values one by one, giving {_fmt(shape_out)}."
        return (
            f"Broadcasting: sizes of 1 (and missing leading dimensions) are stretched to match, "
            f"so {_fmt(shape_a)} with {_fmt(shape_b)} gives {_fmt(shape_out)}."
        )
    if operation == "a @ b":
        shapes = f"{_fmt(shape_a)} @ {_fmt(shape_b)} -> {_fmt(shape_out)}"
        return f"Each output value is a dot product over the shared size {shape_a[-1]}: {shapes}."
    if operation.startswith("torch.cat"):
        return f"{shape_a[0]} rows of a then {shape_b[0]} rows of b: {_fmt(shape_out)}."
    if operation.startswith("a.reshape"):
        return f"The same {_numel(shape_a)} values read in order, laid out as {_fmt(shape_out)}."
    return f"Summing over dim 0 removes it: {_fmt(shape_a)} -> {_fmt(shape_out)}."


def heatmap_slice(t: torch.Tensor) -> tuple[torch.Tensor, str]:
    """A 2-D view of any tensor for a heatmap, and which part of the tensor it shows."""
    if t.dim() == 0:
        return t.reshape(1, 1), "the single value"
    if t.dim() == 1:
        return t.reshape(1, -1), "all values, as one row"
    if t.dim() == 2:
        return t, "all values"
    index = (0,) * (t.dim() - 2)
    return t[index], "t[" + ", ".join(["0"] * (t.dim() - 2)) + "] (the first matrix of " + _fmt(t.shape) + ")"
