"""Interactive widgets for the lessons on PyTorch itself: ragged batches, tensors, autograd, dynamic graphs."""

from __future__ import annotations

import inspect

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from classroom import calculus, dynamic, graphs, tensor_lab
from ui import charts, plain


def _heatmap(t: torch.Tensor, title: str) -> go.Figure:
    values, _ = tensor_lab.heatmap_slice(t.detach().float())
    z = values.numpy()
    fig = go.Figure(go.Heatmap(z=z, text=np.round(z, 2), texttemplate="%{text}", colorscale="Blues", showscale=False))
    fig.update_layout(title=title, height=80 + 32 * z.shape[0], margin=dict(l=10, r=10, t=40, b=10))
    fig.update_yaxes(autorange="reversed", dtick=1)
    fig.update_xaxes(dtick=1, side="top")
    return fig


# --- lesson 1 -----------------------------------------------------------------------------------------------


def ragged_batch() -> None:
    """A batch of sequences of random lengths through tanh_rnn: one graph per sequence, sized by its length."""
    left, right = st.columns(2)
    count = left.slider("Sequences in the batch", 2, 10, 5, key="ragged_count")
    seed = right.number_input("Random seed for the lengths", 0, 999, 0, key="ragged_seed")
    g = torch.Generator().manual_seed(int(seed))
    lengths = torch.randint(1, 13, (count,), generator=g).tolist()
    w = torch.tensor(0.5, requires_grad=True)
    rows = []
    for i, n in enumerate(lengths):
        out = dynamic.tanh_rnn(torch.rand(n, generator=g), w)
        rows.append(
            {"sequence": i + 1, "length": n, "operations recorded": len(graphs.operations(out)), "output": round(out.item(), 4)}
        )
    fig = go.Figure(
        go.Bar(x=[f"#{r['sequence']} (length {r['length']})" for r in rows], y=[r["operations recorded"] for r in rows])
    )
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=30, b=10), yaxis_title="graph nodes", title="One graph per sequence")
    st.plotly_chart(fig, key="ragged_chart", config=charts.CONFIG)
    st.dataframe(rows, hide_index=True)
    with st.expander("The code that ran (classroom/dynamic.py)"):
        st.code(inspect.getsource(dynamic.tanh_rnn), language="python")


# --- lesson 2 -----------------------------------------------------------------------------------------------


def tensor_playground() -> None:
    """Two shapes and an operation -> the result with a heatmap, or the shape error explained."""
    c1, c2, c3 = st.columns([1, 1, 2])
    text_a = c1.text_input("Shape of a", "2, 3", key="play_a", help="sizes separated by commas, e.g. 2, 3")
    text_b = c2.text_input("Shape of b", "3", key="play_b")
    operation = c3.selectbox(
        "Operation", list(tensor_lab.OPERATIONS), key="play_op", format_func=lambda o: f"{o}  ({tensor_lab.OPERATIONS[o]})"
    )
    try:
        shape_a, shape_b = tensor_lab.parse_shape(text_a), tensor_lab.parse_shape(text_b)
    except ValueError as e:
        st.warning(f"Shape not understood: {plain.md(e)}")  # it quotes what was typed
        return
    outcome = tensor_lab.apply(operation, shape_a, shape_b)
    code = [
        f"a = torch.arange({outcome.a.numel()}.).reshape{tuple(shape_a)}",
        f"b = torch.arange(1., {outcome.b.numel() + 1}).reshape{tuple(shape_b)}",
        f"result = {operation}",
    ]
    st.code("\n".join(code), language="python")
    cols = st.columns(3)
    cols[0].plotly_chart(_heatmap(outcome.a, f"a {tuple(outcome.a.shape)}"), key="play_heat_a", config=charts.CONFIG)
    cols[1].plotly_chart(_heatmap(outcome.b, f"b {tuple(outcome.b.shape)}"), key="play_heat_b", config=charts.CONFIG)
    if outcome.result is None:
        cols[2].error(f"RuntimeError: {outcome.error}")
        st.warning(outcome.explanation)
    else:
        shown = tensor_lab.heatmap_slice(outcome.result)[1]
        result = _heatmap(outcome.result, f"result {tuple(outcome.result.shape)}")
        cols[2].plotly_chart(result, key="play_heat_r", config=charts.CONFIG)
        cols[2].caption(f"Showing {shown}.")
        st.success(f"Result shape {tuple(outcome.result.shape)}. {outcome.explanation}")


def numpy_bridge() -> None:
    """One NumPy array, a tensor sharing its memory and a tensor copied from it; change a value and watch."""
    if "bridge" not in st.session_state:
        array = np.arange(5, dtype=np.float64)
        st.session_state.bridge = {"array": array, "shared": torch.from_numpy(array), "copied": torch.tensor(array)}
    b = st.session_state.bridge
    c1, c2, c3 = st.columns(3)
    index = c1.selectbox("Index", list(range(len(b["array"]))), key="bridge_index")
    value = c2.number_input("New value", value=42.0, step=1.0, key="bridge_value")
    names = {"the NumPy array": "array", "the shared tensor": "shared", "the copied tensor": "copied"}
    via = c3.radio("Change it through", list(names), key="bridge_via")
    b1, b2 = st.columns(2)
    if b1.button("Apply the change", type="primary", key="bridge_apply"):
        b[names[via]][index] = value
        st.session_state.bridge_last = f"{names[via].replace('array', 'a')}[{index}] = {value:g}"
    if b2.button("Start over", key="bridge_reset"):
        del st.session_state.bridge
        st.session_state.pop("bridge_last", None)
        st.rerun()
    if last := st.session_state.get("bridge_last"):
        st.code(last, language="python")
    rows = [
        {"name": "a (NumPy)", "made by": "np.arange(5.)", **{str(i): float(v) for i, v in enumerate(b["array"])}},
        {"name": "shared", "made by": "torch.from_numpy(a)", **{str(i): float(v) for i, v in enumerate(b["shared"])}},
        {"name": "copied", "made by": "torch.tensor(a)", **{str(i): float(v) for i, v in enumerate(b["copied"])}},
    ]
    st.dataframe(rows, hide_index=True)
    st.caption(
        f"np.shares_memory(a, shared.numpy()) = **{np.shares_memory(b['array'], b['shared'].numpy())}**, "
        f"np.shares_memory(a, copied.numpy()) = **{np.shares_memory(b['array'], b['copied'].numpy())}**"
    )


# --- lesson 3 -----------------------------------------------------------------------------------------------


def _function() -> tuple[calculus.Function, float]:
    label = st.session_state.get("grad_fn_choice", next(iter(calculus.FUNCTIONS)))
    f = calculus.FUNCTIONS[label]
    x0 = float(np.clip(st.session_state.get("grad_x0", 1.0), f.low, f.high))
    return f, x0


def derivative_explorer() -> None:
    """f and f' over a range, the tangent at a point, autograd's gradient beside the finite difference."""
    c1, c2 = st.columns([1, 2])
    label = c1.selectbox("f(x) =", list(calculus.FUNCTIONS), key="grad_fn_choice")
    f = calculus.FUNCTIONS[label]
    if not f.low <= st.session_state.get("grad_x0", 1.0) <= f.high:
        st.session_state.grad_x0 = 1.0
    x0 = c2.slider("the point x₀", f.low, f.high, 1.0, 0.05, key="grad_x0")
    xs, ys, dys = (t.numpy() for t in calculus.curve(f.fn, f.low, f.high))
    y0, grad, _ = calculus.gradient_at(f.fn, x0)
    numeric = calculus.finite_difference(f.fn, x0)
    fig = go.Figure()
    fig.add_scatter(x=xs, y=ys, name="f(x)", line=dict(width=3))
    fig.add_scatter(x=xs, y=dys, name="f′(x) by autograd", line=dict(dash="dash"))
    half = (f.high - f.low) / 6
    tx = np.array([x0 - half, x0 + half])
    fig.add_scatter(x=tx, y=y0 + grad * (tx - x0), name="tangent at x₀", line=dict(color="gray", dash="dot"))
    fig.add_scatter(x=[x0], y=[y0], name="(x₀, f(x₀))", mode="markers", marker=dict(size=12, color="crimson"))
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=10, b=10), legend=dict(orientation="h", y=-0.15))
    st.plotly_chart(fig, key="grad_chart", config=charts.CONFIG)
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("f(x₀)", f"{y0:.6f}")
    m2.metric("autograd f′(x₀)", f"{grad:.8f}")
    m3.metric("finite difference", f"{numeric:.8f}")
    m4.metric("difference", f"{abs(grad - numeric):.1e}")
    st.code(
        f"x = torch.tensor({x0:g}, dtype=torch.float64, requires_grad=True)\ny = {f.code}\ny.backward()  # x.grad = {grad:.8f}",
        language="python",
    )


def graph() -> None:
    """The grad_fn graph of the function chosen in the explorer, drawn from DOT."""
    f, x0 = _function()
    x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    y = f.fn(x)
    st.caption(
        f"y = {f.code}, recorded at x = {x0:g}: {len(graphs.operations(y))} nodes. Arrows point the way the values "
        "flowed; backward() walks them the other way, from y up to the leaf x."
    )
    st.graphviz_chart(graphs.to_dot(y, {"x": x}, label="y"))


def gradient_descent() -> None:
    """Precomputed gradient-descent steps on the chosen function; a slider walks through them."""
    f, x0 = _function()
    c1, c2 = st.columns(2)
    lr = c1.select_slider("Learning rate", [0.01, 0.03, 0.1, 0.3, 0.6, 1.0, 1.5], 0.1, key="gd_lr")
    start = c2.slider("Start at x", f.low, f.high, float(x0), 0.05, key="gd_start")
    path = calculus.gradient_descent(f.fn, start, lr, steps=30)
    step = st.slider("Step", 0, len(path) - 1, 0, key="gd_step", help="move it to walk through the steps")
    xs, ys, _ = (t.numpy() for t in calculus.curve(f.fn, f.low, f.high))
    px_, py_ = [p[0] for p in path[: step + 1]], [p[1] for p in path[: step + 1]]
    fig = go.Figure()
    fig.add_scatter(x=xs, y=ys, name="f(x)", line=dict(width=3, color="#4c6ef5"))
    fig.add_scatter(x=px_, y=py_, name="steps so far", mode="lines+markers", line=dict(color="orange"), marker=dict(size=7))
    fig.add_scatter(x=[px_[-1]], y=[py_[-1]], name=f"step {step}", mode="markers", marker=dict(size=14, color="crimson"))
    low, high = float(ys.min()), float(ys.max())
    fig.update_yaxes(range=[low - 0.1 * (high - low), high + 0.1 * (high - low)])
    fig.update_xaxes(range=[f.low, f.high])
    fig.update_layout(height=360, margin=dict(l=10, r=10, t=10, b=10), legend=dict(orientation="h", y=-0.15))
    st.plotly_chart(fig, key="gd_chart", config=charts.CONFIG)
    x, y, g = path[step]
    nxt = f"next x = {x:.4f} − {lr} × {g:.4f} = {x - lr * g:.4f}" if step < len(path) - 1 else "last step computed"
    st.markdown(f"Step **{step}**: x = {x:.4f}, f(x) = {y:.4f}, f′(x) = {g:.4f}; {nxt}.")
    if len(path) < 31:
        st.warning(f"The steps ran off to infinity after step {len(path) - 1}: this learning rate is too large here.")
    elif abs(x) > max(abs(f.low), abs(f.high)):
        st.info("x has left the plotted range: a learning rate this large overshoots.")


# --- lesson 4 -----------------------------------------------------------------------------------------------


def two_graphs() -> None:
    """The same data-dependent forward pass for two inputs, with the graph each one recorded, side by side."""
    w_value = st.slider("Weight w", 1.1, 3.0, 1.5, 0.1, key="dyn_w")
    sides = st.columns(2)
    for side, name, default in zip(sides, "AB", (2.0, -0.1)):
        v = side.slider(f"Input {name}: x = [v, −v/2] with v =", -3.0, 3.0, default, 0.05, key=f"dyn_{name}")
        x = torch.tensor([v, -v / 2])
        w = torch.tensor(w_value, requires_grad=True)
        out = dynamic.grow_until_big(x, w)
        steps = dynamic.loop_steps(x, w.detach())
        out.backward()
        branch = "relu" if "ReluBackward0" in graphs.operations(out) else "tanh"
        side.markdown(
            f"Loop ran **{steps}** time{'s' * (steps != 1)}, took the **{branch}** branch; output {out.item():.4f}, "
            f"d out / d w = {w.grad.item():.4f}; **{len(graphs.operations(out))}** nodes."
        )
        side.graphviz_chart(graphs.to_dot(out, {"w": w}, label=f"out ({name})"))
