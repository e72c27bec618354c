"""Interactive widgets for the lessons on PyTorch itself: ragged batches, tensors, autograd, dynamic graphs."""

from __future__ import annotations

import inspect

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from classroom import calculus, dynamic, graphs, tensor_lab
from ui import charts, i18n, plain
from ui.i18n import N_, _, ngettext


def _heatmap(t: torch.Tensor, title: str) -> go.Figure:
    values, _shown = tensor_lab.heatmap_slice(t.detach().float(), i18n.language())
    z = values.numpy()
    fig = go.Figure(go.Heatmap(z=z, text=np.round(z, 2), texttemplate="%{text}", colorscale="Blues", showscale=False))
    i18n.localise(fig).update_layout(title=title, height=80 + 32 * z.shape[0], margin=dict(l=10, r=10, t=40, b=10))
    fig.update_yaxes(autorange="reversed", dtick=1)
    fig.update_xaxes(dtick=1, side="top")
    return fig


# --- lesson 1 -----------------------------------------------------------------------------------------------


def ragged_batch() -> None:
    """A batch of sequences of random lengths through tanh_rnn: one graph per sequence, sized by its length."""
    left, right = st.columns(2)
    count = left.slider(_("Sequences in the batch"), 2, 10, 5, key="ragged_count")
    seed = right.number_input(_("Random seed for the lengths"), 0, 999, 0, key="ragged_seed")
    g = torch.Generator().manual_seed(int(seed))
    lengths = torch.randint(1, 13, (count,), generator=g).tolist()
    w = torch.tensor(0.5, requires_grad=True)
    rows = []
    for i, n in enumerate(lengths):
        out = dynamic.tanh_rnn(torch.rand(n, generator=g), w)
        rows.append((i + 1, n, len(graphs.operations(out)), round(out.item(), 4)))
    bars = [_("#{sequence} (length {length})").format(sequence=number, length=n) for number, n, _ops, _out in rows]
    fig = go.Figure(go.Bar(x=bars, y=[ops for _number, _n, ops, _out in rows]))
    fig.update_layout(
        height=300, margin=dict(l=10, r=10, t=30, b=10), yaxis_title=_("graph nodes"), title=_("One graph per sequence")
    )
    st.plotly_chart(i18n.localise(fig), key="ragged_chart", config=charts.CONFIG)
    columns = (_("sequence"), _("length"), _("operations recorded"), _("output"))
    st.dataframe([dict(zip(columns, row)) for row in rows], hide_index=True)
    with st.expander(_("The code that ran (classroom/dynamic.py)")):
        st.code(inspect.getsource(dynamic.tanh_rnn), language="python")


# --- lesson 2 -----------------------------------------------------------------------------------------------


def tensor_playground() -> None:
    """Two shapes and an operation -> the result with a heatmap, or the shape error explained."""
    c1, c2, c3 = st.columns([1, 1, 2])
    text_a = c1.text_input(_("Shape of a"), "2, 3", key="play_a", help=_("sizes separated by commas, e.g. 2, 3"))
    text_b = c2.text_input(_("Shape of b"), "3", key="play_b")
    page = i18n.bound()  # the options are named outside the script run too (format_func)
    operation = c3.selectbox(
        _("Operation"),
        list(tensor_lab.OPERATIONS),
        key="play_op",
        format_func=lambda o: f"{o}  ({page.gettext(tensor_lab.OPERATIONS[o])})",
    )
    try:
        shape_a, shape_b = tensor_lab.parse_shape(text_a, i18n.language()), tensor_lab.parse_shape(text_b, i18n.language())
    except ValueError as e:
        st.warning(_("Shape not understood: {reason}").format(reason=plain.md(e)))  # it quotes what was typed
        return
    outcome = tensor_lab.apply(operation, shape_a, shape_b, i18n.language())
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
        shown = tensor_lab.heatmap_slice(outcome.result, i18n.language())[1]
        result = _heatmap(outcome.result, _("result {shape}").format(shape=tuple(outcome.result.shape)))
        cols[2].plotly_chart(result, key="play_heat_r", config=charts.CONFIG)
        cols[2].caption(_("Showing {what}.").format(what=shown))
        st.success(
            _("Result shape {shape}. {explanation}").format(shape=tuple(outcome.result.shape), explanation=outcome.explanation)
        )


def numpy_bridge() -> None:
    """One NumPy array, a tensor sharing its memory and a tensor copied from it; change a value and watch."""
    if "bridge" not in st.session_state:
        array = np.arange(5, dtype=np.float64)
        st.session_state.bridge = {"array": array, "shared": torch.from_numpy(array), "copied": torch.tensor(array)}
    b = st.session_state.bridge
    c1, c2, c3 = st.columns(3)
    index = c1.selectbox(_("Index"), list(range(len(b["array"]))), key="bridge_index")
    value = c2.number_input(_("New value"), value=42.0, step=1.0, key="bridge_value")
    names = {N_("the NumPy array"): "array", N_("the shared tensor"): "shared", N_("the copied tensor"): "copied"}
    via = c3.radio(_("Change it through"), list(names), key="bridge_via", format_func=i18n.bound().gettext)  # values: English
    b1, b2 = st.columns(2)
    if b1.button(_("Apply the change"), type="primary", key="bridge_apply"):
        b[names[via]][index] = value
        st.session_state.bridge_last = f"{names[via].replace('array', 'a')}[{index}] = {value:g}"
    if b2.button(_("Start over"), key="bridge_reset"):
        del st.session_state.bridge
        st.session_state.pop("bridge_last", None)
        st.rerun()
    if last := st.session_state.get("bridge_last"):
        st.code(last, language="python")
    name, made = _("name"), _("made by")
    rows = [
        {name: "a (NumPy)", made: "np.arange(5.)", **{str(i): float(v) for i, v in enumerate(b["array"])}},
        {name: "shared", made: "torch.from_numpy(a)", **{str(i): float(v) for i, v in enumerate(b["shared"])}},
        {name: "copied", made: "torch.tensor(a)", **{str(i): float(v) for i, v in enumerate(b["copied"])}},
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
    x0 = c2.slider(_("the point x₀"), f.low, f.high, 1.0, 0.05, key="grad_x0")
    xs, ys, dys = (t.numpy() for t in calculus.curve(f.fn, f.low, f.high))
    y0, grad, _graph = calculus.gradient_at(f.fn, x0)
    numeric = calculus.finite_difference(f.fn, x0)
    fig = go.Figure()
    fig.add_scatter(x=xs, y=ys, name="f(x)", line=dict(width=3))
    fig.add_scatter(x=xs, y=dys, name=_("f′(x) by autograd"), line=dict(dash="dash"))
    half = (f.high - f.low) / 6
    tx = np.array([x0 - half, x0 + half])
    fig.add_scatter(x=tx, y=y0 + grad * (tx - x0), name=_("tangent at x₀"), line=dict(color="gray", dash="dot"))
    fig.add_scatter(x=[x0], y=[y0], name="(x₀, f(x₀))", mode="markers", marker=dict(size=12, color="crimson"))
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=10, b=10), legend=dict(orientation="h", y=-0.15))
    st.plotly_chart(i18n.localise(fig), key="grad_chart", config=charts.CONFIG)
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("f(x₀)", i18n.number(y0, 6, grouping=False))
    m2.metric(_("autograd f′(x₀)"), i18n.number(grad, 8, grouping=False))
    m3.metric(_("finite difference"), i18n.number(numeric, 8, grouping=False))
    m4.metric(_("difference"), i18n.scientific(abs(grad - numeric)))
    st.code(
        f"x = torch.tensor({x0:g}, dtype=torch.float64, requires_grad=True)\ny = {f.code}\ny.backward()  # x.grad = {grad:.8f}",
        language="python",
    )


def graph() -> None:
    """The grad_fn graph of the function chosen in the explorer, drawn from DOT."""
    f, x0 = _function()
    x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    y = f.fn(x)
    nodes = len(graphs.operations(y))
    recorded = ngettext(
        "y = {code}, recorded at x = {x}: {nodes} node. Arrows point the way the values flowed; backward() walks them "
        "the other way, from y up to the leaf x.",
        "y = {code}, recorded at x = {x}: {nodes} nodes. Arrows point the way the values flowed; backward() walks them "
        "the other way, from y up to the leaf x.",
        nodes,
    )
    st.caption(recorded.format(code=f.code, x=i18n.short(x0), nodes=nodes))
    st.graphviz_chart(graphs.to_dot(y, {"x": x}, label="y"))


def gradient_descent() -> None:
    """Precomputed gradient-descent steps on the chosen function; a slider walks through them."""
    f, x0 = _function()
    c1, c2 = st.columns(2)
    lang = i18n.language()  # format_func may be called outside the script run (AppTest does)
    rates = [0.01, 0.03, 0.1, 0.3, 0.6, 1.0, 1.5]
    lr = c1.select_slider(_("Learning rate"), rates, 0.1, key="gd_lr", format_func=lambda r: i18n.decimal(str(r), lang))
    start = c2.slider(_("Start at x"), f.low, f.high, float(x0), 0.05, key="gd_start")
    path = calculus.gradient_descent(f.fn, start, lr, steps=30)
    step = st.slider(_("Step"), 0, len(path) - 1, 0, key="gd_step", help=_("move it to walk through the steps"))
    xs, ys, _slopes = (t.numpy() for t in calculus.curve(f.fn, f.low, f.high))
    px_, py_ = [p[0] for p in path[: step + 1]], [p[1] for p in path[: step + 1]]
    fig = go.Figure()
    fig.add_scatter(x=xs, y=ys, name="f(x)", line=dict(width=3, color="#4c6ef5"))
    fig.add_scatter(x=px_, y=py_, name=_("steps so far"), mode="lines+markers", line=dict(color="orange"), marker=dict(size=7))
    fig.add_scatter(
        x=[px_[-1]], y=[py_[-1]], name=_("step {step}").format(step=step), mode="markers", marker=dict(size=14, color="crimson")
    )
    low, high = float(ys.min()), float(ys.max())
    fig.update_yaxes(range=[low - 0.1 * (high - low), high + 0.1 * (high - low)])
    fig.update_xaxes(range=[f.low, f.high])
    fig.update_layout(height=360, margin=dict(l=10, r=10, t=10, b=10), legend=dict(orientation="h", y=-0.15))
    st.plotly_chart(i18n.localise(fig), key="gd_chart", config=charts.CONFIG)
    x, y, g = path[step]
    n4 = lambda v: i18n.number(v, 4, grouping=False)
    values = {"step": step, "x": n4(x), "y": n4(y), "g": n4(g)}
    if step < len(path) - 1:
        line = _("Step **{step}**: x = {x}, f(x) = {y}, f′(x) = {g}; next x = {x} − {lr} × {g} = {next}.")
        st.markdown(line.format(**values, lr=i18n.decimal(str(lr)), next=n4(x - lr * g)))
    else:
        st.markdown(_("Step **{step}**: x = {x}, f(x) = {y}, f′(x) = {g}; last step computed.").format(**values))
    if len(path) < 31:
        off = _("The steps ran off to infinity after step {step}: this learning rate is too large here.")
        st.warning(off.format(step=len(path) - 1))
    elif abs(x) > max(abs(f.low), abs(f.high)):
        st.info(_("x has left the plotted range: a learning rate this large overshoots."))


# --- lesson 4 -----------------------------------------------------------------------------------------------


def two_graphs() -> None:
    """The same data-dependent forward pass for two inputs, with the graph each one recorded, side by side."""
    w_value = st.slider(_("Weight w"), 1.1, 3.0, 1.5, 0.1, key="dyn_w")
    sides = st.columns(2)
    for side, name, default in zip(sides, "AB", (2.0, -0.1)):
        v = side.slider(_("Input {name}: x = [v, −v/2] with v =").format(name=name), -3.0, 3.0, default, 0.05, key=f"dyn_{name}")
        x = torch.tensor([v, -v / 2])
        w = torch.tensor(w_value, requires_grad=True)
        out = dynamic.grow_until_big(x, w)
        steps = dynamic.loop_steps(x, w.detach())
        out.backward()
        branch = "relu" if "ReluBackward0" in graphs.operations(out) else "tanh"
        ran = ngettext(
            "Loop ran **{steps}** time, took the **{branch}** branch; output {output}, d out / d w = {gradient}; "
            "**{nodes}** nodes.",
            "Loop ran **{steps}** times, took the **{branch}** branch; output {output}, d out / d w = {gradient}; "
            "**{nodes}** nodes.",
            steps,
        )
        n4 = lambda v: i18n.number(v, 4, grouping=False)
        nodes = len(graphs.operations(out))
        side.markdown(ran.format(steps=steps, branch=branch, output=n4(out.item()), gradient=n4(w.grad.item()), nodes=nodes))
        side.graphviz_chart(graphs.to_dot(out, {"w": w}, label=f"out ({name})"))
