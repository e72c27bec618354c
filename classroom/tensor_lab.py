"""The tensor playground: two tensors of chosen shapes, one operation, and the result or the shape error explained."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from classroom.locale import N_, translations

MAX_DIMS = 4
MAX_SIZE = 12
OPERATIONS = {  # N_: the page shows each description in its own language
    "a + b": N_("add, broadcasting"),
    "a * b": N_("multiply elementwise, broadcasting"),
    "a @ b": N_("matrix multiplication"),
    "torch.cat([a, b], dim=0)": N_("join end to end along the first dimension (torch.stack would add a new one)"),
    "a.reshape(b.shape)": N_("same values, new shape"),
    "a.sum(dim=0)": N_("sum away the first dimension"),
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


def parse_shape(text: str, language: str = "en") -> tuple[int, ...]:
    """'2, 3' -> (2, 3); ValueError with a readable reason (in the language given) for anything else."""
    _ = translations(language).gettext
    parts = [p.strip() for p in text.replace("x", ",").replace("×", ",").replace("(", "").replace(")", "").split(",")]
    parts = [p for p in parts if p]
    if not parts:
        raise ValueError(_("write a shape as sizes separated by commas, like 2, 3"))
    if len(parts) > MAX_DIMS:
        raise ValueError(_("at most {most} dimensions here, got {count}").format(most=MAX_DIMS, count=len(parts)))
    sizes = []
    for p in parts:
        if not p.isdigit():
            raise ValueError(_("{text} is not a whole number; write a shape like 2, 3").format(text=repr(p)))
        if not 1 <= int(p) <= MAX_SIZE:
            raise ValueError(_("each size must be between 1 and {most}, got {size}").format(most=MAX_SIZE, size=p))
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


def apply(operation: str, shape_a: tuple[int, ...], shape_b: tuple[int, ...], language: str = "en") -> Outcome:
    """Run one of OPERATIONS on fresh inputs; never raises for a shape problem. The explanation is in the language given."""
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
        why = explain_error(operation, a.shape, b.shape, language)
        return Outcome(operation, a, b, None, str(e).strip().splitlines()[0], why)
    return Outcome(operation, a, b, result, "", explain_success(operation, a.shape, b.shape, result.shape, language))


def _fmt(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def broadcast_conflict(shape_a, shape_b) -> tuple[int, int, int] | None:
    """(dimension counted from the right, size in a, size in b) of the first pair that cannot broadcast, or None."""
    for k in range(1, min(len(shape_a), len(shape_b)) + 1):
        sa, sb = shape_a[-k], shape_b[-k]
        if sa != sb and sa != 1 and sb != 1:
            return k, sa, sb
    return None


def explain_error(operation: str, shape_a, shape_b, language: str = "en") -> str:
    """The rule the shapes broke, in words, with the sizes that broke it."""
    _ = translations(language).gettext
    if operation in ("a + b", "a * b"):
        k, sa, sb = broadcast_conflict(shape_a, shape_b) or (0, 0, 0)
        return _(
            "Broadcasting lines the shapes up from the right. At dimension -{k}, a has {sa} and b has {sb}: "
            "two sizes are compatible only when they are equal or one of them is 1."
        ).format(k=k, sa=sa, sb=sb)
    if operation == "a @ b":
        if len(shape_a) == 1 and len(shape_b) == 1:
            why = _("Two vectors multiply as a dot product, which needs equal lengths: a has {sa}, b has {sb}.")
            return why.format(sa=shape_a[0], sb=shape_b[0])
        inner_b = shape_b[0] if len(shape_b) == 1 else shape_b[-2]
        if shape_a[-1] != inner_b:
            if len(shape_b) == 1:
                why = _(
                    "a @ b needs a's last size to equal b's only size: a {a} ends in {last}, b {b} offers {inner}. "
                    "Try b.T, or swap a and b."
                )
            else:
                why = _(
                    "a @ b needs a's last size to equal b's second-to-last size: a {a} ends in {last}, b {b} offers {inner}. "
                    "Try b.T, or swap a and b."
                )
            return why.format(a=_fmt(shape_a), last=shape_a[-1], b=_fmt(shape_b), inner=inner_b)
        k, sa, sb = broadcast_conflict(shape_a[:-2], shape_b[:-2]) or (0, 0, 0)
        why = _(
            "The batch dimensions in front of the matrices must broadcast: at batch dimension -{k}, a has {sa} and b has {sb}."
        )
        return why.format(k=k, sa=sa, sb=sb)
    if operation.startswith("torch.cat"):
        if len(shape_a) != len(shape_b):
            why = _("torch.cat joins tensors with the same number of dimensions: a has {da}, b has {db}.")
            return why.format(da=len(shape_a), db=len(shape_b))
        bad = next(i for i in range(1, len(shape_a)) if shape_a[i] != shape_b[i])
        why = _("torch.cat along dim 0 needs every other size to match: at dim {dim}, a has {sa} and b has {sb}.")
        return why.format(dim=bad, sa=shape_a[bad], sb=shape_b[bad])
    if operation.startswith("a.reshape"):
        return _(
            "A reshape keeps every value, so the element count must stay the same: a {a} holds {na} values, the shape {b} "
            "holds {nb}."
        ).format(a=_fmt(shape_a), na=_numel(shape_a), b=_fmt(shape_b), nb=_numel(shape_b))
    return _("the shapes do not fit this operation")


def explain_success(operation: str, shape_a, shape_b, shape_out, language: str = "en") -> str:
    """How the result's shape came from the inputs' shapes."""
    _ = translations(language).gettext
    a, b, out = _fmt(shape_a), _fmt(shape_b), _fmt(shape_out)
    if operation in ("a + b", "a * b"):
        if tuple(shape_a) == tuple(shape_b):
            return _("Same shapes: the operation pairs up values one by one, giving {out}.").format(out=out)
        return _(
            "Broadcasting: sizes of 1 (and missing leading dimensions) are stretched to match, so {a} with {b} gives {out}."
        ).format(a=a, b=b, out=out)
    if operation == "a @ b":
        shapes = f"{a} @ {b} -> {out}"
        return _("Each output value is a dot product over the shared size {size}: {shapes}.").format(
            size=shape_a[-1], shapes=shapes
        )
    if operation.startswith("torch.cat"):
        return _("{ra} rows of a then {rb} rows of b: {out}.").format(ra=shape_a[0], rb=shape_b[0], out=out)
    if operation.startswith("a.reshape"):
        return _("The same {count} values read in order, laid out as {out}.").format(count=_numel(shape_a), out=out)
    return _("Summing over dim 0 removes it: {a} -> {out}.").format(a=a, out=out)


def heatmap_slice(t: torch.Tensor, language: str = "en") -> tuple[torch.Tensor, str]:
    """A 2-D view of any tensor for a heatmap, and which part of the tensor it shows (in the language given)."""
    _ = translations(language).gettext
    if t.dim() == 0:
        return t.reshape(1, 1), _("the single value")
    if t.dim() == 1:
        return t.reshape(1, -1), _("all values, as one row")
    if t.dim() == 2:
        return t, _("all values")
    index = (0,) * (t.dim() - 2)
    where = "t[" + ", ".join(["0"] * (t.dim() - 2)) + "]"
    return t[index], _("{index} (the first matrix of {shape})").format(index=where, shape=_fmt(t.shape))
