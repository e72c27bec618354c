"""Widgets of the CNN anatomy lesson: a real image and a net (untrained or the latest trained), taken apart."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import plotly.colors
import plotly.graph_objects as go
import streamlit as st
import torch

from classroom import anatomy, checkpoints, data
from classroom.config import TUTORIAL_MEAN, TUTORIAL_STD
from classroom.models import Net, build
from ui import charts, plain, state

UNTRAINED, TRAINED = "untrained (random weights)", "latest trained checkpoint"
# A window or a cell on a map: black under white, so it shows on any image and on any colour of the maps' scales
_OUTLINE = (("black", 5), ("white", 2))

_CHANNELS = {"conv1": ("red", "green", "blue")}  # what conv1's input channels are; conv2 reads pooled maps


@dataclass(frozen=True)
class Weights:
    """A Net-shaped model and what is needed to feed it and read its answer."""

    model: Net
    classes: tuple[str, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    label: str  # how the UI names them, as markdown (a run's data source is user-given)
    source: str  # the data set whose test images the lesson shows: the one these weights were trained on


@st.cache_resource(show_spinner=False)
def _untrained() -> Net:
    # The same "untrained net" for everyone, every visit, from its own generator: reseeding torch's global one
    # here would change what a run on another thread draws
    return build("net", generator=torch.Generator().manual_seed(0)).eval()


@st.cache_resource(show_spinner="Loading the checkpoint…", max_entries=4)
def _trained(path: str, mtime: float) -> tuple[Net, dict]:
    return checkpoints.load(path)


@st.cache_resource(show_spinner="Loading test images…", max_entries=4)
def _images(source: str, data_dir: str, roots: tuple) -> data.Dataset:
    if source == "shapes":  # a few hundred test images are plenty here, and drawn in a blink
        return data.make_shapes(n_train=0, n_test=200)
    return data.load(source, data_dir, roots=roots)


def images_of(weights: Weights) -> tuple[data.Dataset, str]:
    """(test images, sentence for the page): from the data set the weights were trained on; the untrained net gets
    CIFAR-10 when it is here, else the synthetic shapes."""
    try:
        images = _images(weights.source, state.data_dir(), tuple(state.data_roots()))
    except data.DataError as e:
        images = _images("shapes", state.data_dir(), ())
        missing = f"{plain.md(weights.source)}, which the net trained on, is not here ({plain.md(e)})"
        return images, f"synthetic **shapes** test images: {missing}"
    if images.name == "cifar10":
        return images, "CIFAR-10 test images"
    if images.synthetic:
        why = "the data set the net trained on" if weights.source == "shapes" else "CIFAR-10 is not downloaded on this server"
        return images, f"test images of the built-in synthetic **shapes** set ({why})"
    return images, f"test images of {plain.md(images.name)}, the image folder the net trained on"


def _untrained_weights() -> Weights:
    source = "cifar10" if data.cifar10_present(state.data_dir()) else "shapes"
    return Weights(_untrained(), data.CIFAR10_CLASSES, TUTORIAL_MEAN, TUTORIAL_STD, "untrained Net (seed 0)", source)


def latest_weights() -> tuple[Weights | None, str]:
    """The newest finished Net/WideNet run's weights, or None and the reason."""
    found = anatomy.newest_checkpoint(state.manager())
    if found is None:
        return None, "No trained Net checkpoint exists yet: train one in the lab (any run of Net or WideNet that finishes)."
    run, path = found
    try:
        model, info = _trained(str(path), path.stat().st_mtime)
    except (checkpoints.CheckpointError, OSError) as e:
        return None, f"The newest checkpoint could not be loaded: {plain.md(e)}"
    cfg = info["config"]
    label = f"run {run.id} ({cfg.model}, {len(run.epochs)} epoch{'s' * (len(run.epochs) != 1)} on {plain.md(run.data_label)})"
    return Weights(model, tuple(info["classes"]), tuple(cfg.mean), tuple(cfg.std), label, cfg.data), ""


def chosen_weights() -> Weights:
    """The weights picked in the setup widget: the latest trained ones when asked for and there, else untrained."""
    if st.session_state.get("cnn_weights") == TRAINED:
        weights, _ = latest_weights()
        if weights is not None:
            return weights
    return _untrained_weights()


def chosen() -> tuple[Weights, torch.Tensor, str]:
    """The weights and the image picked in the setup widget (defaults before it has run); the image comes from the
    data set the weights know, so its true class is one of theirs."""
    weights = chosen_weights()
    images, _ = images_of(weights)
    index = int(st.session_state.get("cnn_index", 0)) % len(images.test_x)
    image = images.test_x[index]
    true = plain.md(images.classes[int(images.test_y[index])])
    return weights, image, f"{plain.md(images.label)} test image #{index} (true class: {true})"


def _big(image: torch.Tensor, scale: int = 5) -> np.ndarray:
    """uint8 [3, H, W] -> HWC enlarged with square pixels, so a 32x32 image is visible."""
    return np.kron(image.permute(1, 2, 0).numpy(), np.ones((scale, scale, 1), dtype=np.uint8))


def _top3_chart(top: list[tuple[str, float]], key: str) -> None:
    fig = go.Figure(go.Bar(x=[p * 100 for _, p in top][::-1], y=[plain.plot(c) for c, _ in top][::-1], orientation="h"))
    fig.update_traces(text=[f"{p:.1%}" for _, p in top][::-1], textposition="auto")
    fig.update_layout(height=180, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="probability (%)", title="Top-3 prediction")
    fig.update_xaxes(range=[0, 100])
    st.plotly_chart(fig, key=key, config=charts.CONFIG)


def setup() -> None:
    """Pick the weights, then an image of the data set they know, for the widgets below."""
    c1, c2 = st.columns(2)
    c1.radio("Weights", [UNTRAINED, TRAINED], key="cnn_weights", horizontal=True)
    trained, reason = latest_weights()
    if st.session_state.get("cnn_weights") == TRAINED:
        if trained is None:
            c1.warning(reason + " Showing the untrained net instead.")
        else:
            c1.caption(f"Using {trained.label}; classes: {plain.md(', '.join(trained.classes))}.")
    images, sentence = images_of(chosen_weights())
    c2.number_input("Test image number", 0, len(images.test_x) - 1, 0, key="cnn_index")
    c2.caption(f"Images: {sentence}.")


def layers() -> None:
    """The chosen image through Net.forward, step by step: output shape and parameters of each step."""
    weights, image, caption = chosen()
    left, right = st.columns([1, 2])
    left.image(_big(image), caption=caption)
    with left:
        _top3_chart(anatomy.top_k(weights.model, image, weights.classes, weights.mean, weights.std), key="cnn_top3")
    rows, _ = anatomy.layers(weights.model, anatomy.to_input(image, weights.mean, weights.std))
    table = [{"step in forward": "input x", "layer": "", "output shape": "1 × 3 × 32 × 32", "parameters": 0}]
    table += [
        {
            "step in forward": r.step,
            "layer": r.kind,
            "output shape": " × ".join(map(str, r.out_shape)),
            "parameters": r.parameters,
        }
        for r in rows
    ]
    right.dataframe(table, hide_index=True, height=38 + 35 * len(table))
    right.caption(
        f"{weights.label}: {sum(r.parameters for r in rows):,} parameters in all (the pool layer appears twice, with none)."
    )


def filters() -> None:
    """conv1's filters as small RGB pictures."""
    weights, _, _ = chosen()
    pictures = _tiles((anatomy.filters(weights.model.conv1).numpy() * 255).round().astype(np.uint8), 70)
    st.image(pictures, caption=[f"filter {i}" for i in range(len(pictures))])  # numbered from 0, as PyTorch indexes them
    st.caption(f"conv1 weights {tuple(weights.model.conv1.weight.shape)} of the {weights.label}.")


def _outline(fig: go.Figure, top: int, left: int, height: int, width: int) -> None:
    """A box around cells [top, top + height) x [left, left + width) of an image or heatmap with unit cells."""
    for color, line in _OUTLINE:
        fig.add_shape(
            type="rect", x0=left - 0.5, x1=left + width - 0.5, y0=top - 0.5, y1=top + height - 0.5,
            line=dict(color=color, width=line),
        )  # fmt: skip


def _map(values: np.ndarray, title: str, scale: str = "RdBu_r", digits: int = 0, height: int = 300) -> go.Figure:
    """One 2-D map as a heatmap with square cells, row 0 at the top, signed values centred on white; with digits > 0
    each cell shows its value."""
    heat = go.Heatmap(
        z=values, colorscale=scale, zmid=0 if scale == "RdBu_r" else None, showscale=False,
        hovertemplate="row %{y}, column %{x}: %{z:.4f}<extra></extra>",
    )  # fmt: skip
    if digits:
        heat.update(text=np.vectorize(lambda v: f"{v:.{digits}f}")(values), texttemplate="%{text}", textfont=dict(size=11))
    fig = go.Figure(heat)
    fig.update_yaxes(autorange="reversed", scaleanchor="x", constrain="domain", showticklabels=not digits, ticks="")
    fig.update_xaxes(constrain="domain", showticklabels=not digits, ticks="")
    fig.update_layout(title=dict(text=title, font=dict(size=14)), height=height, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def _channel_name(layer: str, channel: int, number: bool = True) -> str:
    """conv1's input channels are colours ("0 (red)", or "red" without the number); conv2's are maps ("map 0")."""
    names = _CHANNELS.get(layer)
    if names is None:
        return f"map {channel}"
    return f"{channel} ({names[channel]})" if number else names[channel]


def _sum_text(terms: list[tuple[float, str]]) -> str:
    """A sum written out with its signs, each term named: "0.1200 (red) - 0.0300 (green) + 0.0500 (bias)"."""
    text = ""
    for i, (value, name) in enumerate(terms):
        sign = ("-" if value < 0 else "") if i == 0 else (" - " if value < 0 else " + ")
        text += f"{sign}{abs(value):.4f} ({name})"
    return text


def _slider(where, label: str, top: int, default: int, key: str, format_func=str) -> int:
    """A slider over 0..top; a value kept from wider weights (WideNet has 32 filters, Net 6) is brought into range."""
    st.session_state[key] = min(st.session_state.get(key, default), top)
    return where.select_slider(label, list(range(top + 1)), key=key, format_func=format_func)


@st.fragment  # moving a slider redraws this widget alone, not the whole lesson
def convolution() -> None:
    """One output value of conv1 or conv2 for the chosen image: the window, the kernel, their products, the sum, the check."""
    weights, image, caption = chosen()
    net, x = weights.model, anatomy.to_input(image, weights.mean, weights.std)
    layer = st.radio("Convolution", anatomy.CONVOLUTIONS, horizontal=True, key="cnn_layer")
    conv = getattr(net, layer)
    size = {a.name: a.shape for a in anatomy.activations(net, x)}[layer][-2:]  # the map size forward gives
    c1, c2, c3, c4 = st.columns(4)
    channel = _slider(c1, "Filter (output channel)", conv.out_channels - 1, 0, f"cnn_{layer}_channel")
    row = _slider(c2, "Row", size[0] - 1, size[0] // 2 - 2, f"cnn_{layer}_row")
    col = _slider(c3, "Column", size[1] - 1, size[1] // 2 - 2, f"cnn_{layer}_col")
    shown = _slider(c4, "Input channel shown", conv.in_channels - 1, 0, f"cnn_{layer}_in", lambda c: _channel_name(layer, c))
    step = anatomy.convolution_at(net, x, layer, channel, row, col)
    k = step.kernel.shape[-1]

    left, right = st.columns(2)
    if layer == "conv1":  # the picture itself, the window over all three colours at once
        picture = go.Figure(go.Image(z=image.permute(1, 2, 0).numpy(), hovertemplate="row %{y}, column %{x}<extra></extra>"))
        picture.update_layout(height=300, margin=dict(l=10, r=10, t=40, b=10), title=dict(text="input image", font=dict(size=14)))
    else:
        picture = _map(step.inputs[shown].numpy(), f"conv2's input: pooled map {shown}", scale="viridis")
    _outline(picture, step.top, step.left, k, k)
    left.plotly_chart(picture, key="cnn_conv_input", config=charts.CONFIG)
    result = _map(step.output.numpy(), f"{layer} output, filter {channel} (before ReLU)")
    _outline(result, row, col, 1, 1)
    right.plotly_chart(result, key="cnn_conv_output", config=charts.CONFIG)
    h, w = step.inputs.shape[1:]
    where = "the image" if layer == "conv1" else f"the {h}×{w} maps conv2 reads"
    st.caption(
        f"Outlined: the {k}×{k} window at rows {step.top}–{step.top + k - 1}, columns {step.left}–{step.left + k - 1} of "
        f"{where}, and the one value it gives, at row {row}, column {col} of the output. {caption}."
    )

    name = f"channel {_channel_name(layer, shown)}" if layer == "conv1" else _channel_name(layer, shown)
    cols = st.columns(3)
    cells = (("window", step.window), ("kernel", step.kernel), ("window × kernel", step.products))
    for column, (what, values), key in zip(cols, cells, ("window", "kernel", "products")):
        fig = _map(values[shown].numpy(), f"{what}, {name}", digits=2 if key == "window" else 3, height=280)
        column.plotly_chart(fig, key=f"cnn_conv_{key}", config=charts.CONFIG)
    source = "the normalised image, (pixel / 255 − mean) / std" if layer == "conv1" else "pool(relu(conv1(x)))"
    st.caption(
        f"Input {name} of {step.window.shape[0]}: the window holds values of {source}; the kernel is "
        f"`{layer}.weight[{channel}, {shown}]`; the products add up to this channel's term of the sum below."
    )

    parts = [(v, _channel_name(layer, c, number=False)) for c, v in enumerate(step.per_channel.tolist())]
    st.markdown(
        f"**By hand:** the {step.products.numel()} products ({step.window.shape[0]} channels × {k}×{k}), added up channel "
        f"by channel, plus the bias: {_sum_text([*parts, (step.bias, 'bias')])} = **{step.total:.4f}**"
    )
    st.markdown(f"**PyTorch:** `{step.code}` = **{step.pytorch:.4f}**")
    gap = abs(step.total - step.pytorch)
    if gap <= 1e-4 * max(1.0, abs(step.pytorch)):
        st.success(f"The same value: they differ by {gap:.1e}, float32 rounding.", icon=":material/check_circle:")
    else:
        st.error(f"They differ by {gap:.3g}: the hand sum does not match the layer.", icon=":material/cancel:")


@functools.cache
def _palette(scale: str) -> np.ndarray:
    """256 colours of a plotly colour scale, [256, 3] uint8."""
    colours = plotly.colors.sample_colorscale(scale, np.linspace(0, 1, 256).tolist())  # "rgb(r, g, b)" strings
    return np.array([[round(float(v)) for v in c[4:-1].split(",")] for c in colours], dtype=np.uint8)


def _pictures(maps: np.ndarray, signed: bool) -> tuple[list[np.ndarray], float]:
    """A layer's maps [C, H, W] as coloured pictures on one scale for the whole layer, and its top |value|: signed maps
    blue (below 0) to white (0) to red, others dark (0) to yellow."""
    top = float(np.abs(maps).max()) or 1.0  # a layer ReLU silenced entirely is all zeros
    shade = (maps / top + 1) / 2 if signed else maps / top
    rgb = _palette("RdBu_r" if signed else "viridis")[np.clip(np.rint(shade * 255), 0, 255).astype(int)]
    return _tiles(rgb, 84 if len(maps) <= 8 else 70), top  # a few big maps, or many: four fit across a phone, ten a laptop


def _tiles(pictures: np.ndarray, size: int) -> list[np.ndarray]:
    """uint8 RGB pictures [N, H, W, 3] enlarged by a whole factor to about `size` pixels (square pixels: the browser
    would blur a picture it scales up), each with a transparent margin that keeps neighbours apart on any page colour."""
    scale = max(1, size // pictures.shape[2])
    big = [np.kron(p, np.ones((scale, scale, 1), dtype=np.uint8)) for p in pictures]
    return [np.pad(np.dstack([b, np.full(b.shape[:2], 255, np.uint8)]), ((3, 3), (3, 3), (0, 0))) for b in big]


def _bars(values: np.ndarray, names: list[str] | None, percent: bool = False) -> go.Figure:
    """A vector as bars: one per unit, or one per class (then horizontal, labelled with the class names, the top one
    in the theme's colour)."""
    if names is None:
        fig = go.Figure(go.Bar(x=list(range(len(values))), y=values, hovertemplate="unit %{x}: %{y:.4f}<extra></extra>"))
        fig.update_layout(height=170, xaxis_title="unit", bargap=0.1)
    else:
        shown = values * 100 if percent else values
        labels = [f"{v:.1f} %" if percent else f"{v:.2f}" for v in shown]
        colours = ["#D0421F" if i == int(values.argmax()) else "#5B8DEF" for i in range(len(values))]
        bar = go.Bar(x=shown, y=[plain.plot(n) for n in names], orientation="h", marker_color=colours, text=labels)
        fig = go.Figure(bar.update(textposition="outside", cliponaxis=False))
        fig.update_yaxes(autorange="reversed")  # the first class on top
        span = float(np.abs(shown).max()) or 1.0
        low = 0 if percent or shown.min() >= 0 else -1.3 * span  # room for the labels outside the bars
        fig.update_xaxes(range=[low, 100 if percent else 1.3 * span], title="probability (%)" if percent else "score (logit)")
        fig.update_layout(height=50 + 24 * len(names))
    fig.update_layout(margin=dict(l=10, r=10, t=10, b=10))
    return fig


def activations() -> None:
    """The chosen image through Net.forward: every step's output in order, then the softmax, each with its shape."""
    weights, image, caption = chosen()
    steps = anatomy.activations(weights.model, anatomy.to_input(image, weights.mean, weights.std))
    for i, a in enumerate(steps, 1):
        st.markdown(f"**{i}. {a.name}** · `{a.code}` → {' × '.join(map(str, a.shape))}")
        values = a.value.float().numpy()
        if values.ndim == 3:  # maps: as pictures in a row that wraps, so a phone gets a few per line, not specks
            signed = a.name.startswith("conv")  # a conv's output can be negative; after ReLU (and pooling) it cannot
            pictures, top = _pictures(values, signed)
            names = [str(c) for c in range(len(pictures))]
            st.image(pictures, caption=names, alt=[f"{a.name} channel {c}" for c in names])
            colours = f"blue −{top:.2f}, white 0, red +{top:.2f}" if signed else f"dark 0 to yellow {top:.2f}"
            st.caption(f"{len(values)} maps of {values.shape[1]}×{values.shape[2]}, channels from 0; colour: {colours}.")
        elif a.name in ("fc3 (logits)", "softmax"):
            st.plotly_chart(
                _bars(values, list(weights.classes), percent=a.name == "softmax"), key=f"cnn_act_{i}", config=charts.CONFIG
            )
        else:
            st.plotly_chart(_bars(values, None), key=f"cnn_act_{i}", config=charts.CONFIG)
    best = int(steps[-1].value.argmax())
    st.caption(
        f"For {caption}, with the {weights.label}: the net's answer is the largest logit, "
        f"**{plain.md(weights.classes[best])}** ({float(steps[-1].value[best]):.1%})."
    )


def upload() -> None:
    """Classify an uploaded image: any size or format, refused with a message when unusable."""
    weights, _, _ = chosen()
    limit_mb = anatomy.MAX_UPLOAD_BYTES // 2**20
    file = st.file_uploader("An image of your own", key="cnn_upload", max_upload_size=limit_mb, help=f"up to {limit_mb} MB")
    if file is None:
        classes = plain.md(", ".join(weights.classes))
        st.caption(f"The prediction will come from the {weights.label}, which knows: {classes}.")
        return
    try:
        image = anatomy.image_from_upload(file.getvalue(), file.name)
    except data.DataError as e:
        st.error(f"That file cannot be used: {plain.md(e)}.")
        return
    left, right = st.columns([1, 2])
    left.image(_big(image), caption=f"{plain.md(file.name)}, as the net sees it (32×32)")
    with right:
        _top3_chart(anatomy.top_k(weights.model, image, weights.classes, weights.mean, weights.std), key="cnn_upload_top3")
        st.caption(f"Predicted by the {weights.label}.")
