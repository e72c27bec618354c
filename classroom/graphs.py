"""Autograd's recorded graph (grad_fn chain) as a list of operations and as Graphviz DOT text."""

from __future__ import annotations

import torch


def _walk(output: torch.Tensor):
    """(node, inputs) for every backward node reachable from output.grad_fn, inputs before the nodes that use them."""
    if output.grad_fn is None:
        return []
    order, seen = [], set()
    stack = [(output.grad_fn, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for child, _ in reversed(node.next_functions):
            if child is not None and id(child) not in seen:
                stack.append((child, False))
    return [(node, [c for c, _ in node.next_functions if c is not None]) for node in order]


def operations(output: torch.Tensor) -> list[str]:
    """The names of the backward nodes autograd recorded for output, leaves first (e.g. AccumulateGrad, MulBackward0)."""
    return [type(node).__name__ for node, _ in _walk(output)]


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _shape(t: torch.Tensor) -> str:
    return "scalar" if t.dim() == 0 else "×".join(str(s) for s in t.shape)


def to_dot(output: torch.Tensor, names: dict[str, torch.Tensor] | None = None, label: str = "output") -> str:
    """DOT text of the graph that backward() would walk: leaves (AccumulateGrad) at the top, the output at the bottom."""
    by_id = {id(t): name for name, t in (names or {}).items()}
    lines = [
        "digraph autograd {",
        '  graph [rankdir=TB, bgcolor="transparent", fontname="Helvetica"];',
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11, fillcolor="#e8eefc", color="#4c6ef5"];',
        '  edge [color="#666666", arrowsize=0.7];',
    ]
    walk = _walk(output)
    number = {id(node): i for i, (node, _) in enumerate(walk)}  # stable names: the same graph gives the same DOT
    for node, _ in walk:
        kind = type(node).__name__
        if kind == "AccumulateGrad":
            leaf = node.variable
            text = f"{by_id.get(id(leaf), 'leaf')} {_shape(leaf)}\nAccumulateGrad"
            lines.append(f'  n{number[id(node)]} [label={_quote(text)}, fillcolor="#d3f9d8", color="#2b8a3e"];')
        else:
            lines.append(f"  n{number[id(node)]} [label={_quote(kind)}];")
    for node, inputs in walk:
        for child in inputs:
            lines.append(f"  n{number[id(child)]} -> n{number[id(node)]};")
    lines.append(f'  out [label={_quote(f"{label} {_shape(output)}")}, shape=ellipse, fillcolor="#fff3bf", color="#e67700"];')
    if walk:
        lines.append(f"  n{len(walk) - 1} -> out;")
    lines.append("}")
    return "\n".join(lines)
