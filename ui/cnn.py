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
from ui import charts, i18n, plain, state
from ui.i18n import N_, _, ngettext

UNTRAINED, TRAINED = N_("untrained (random weights)"), N_("latest trained checkpoint")  # the radio's values: English
# A window or a cell on a map: black under white, so it shows on any image and on any colour of the maps' scales
_OUTLINE = (("black", 5), ("white", 2))

_CHANNELS = {"conv1": (N_("red"), N_("green"), N_("blue"))}  # what conv1's input channels are; conv2 reads pooled maps


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


@st.cache_resource(show_spinner=False, max_entries=4)  # the callers' spinners speak the page's language
def _trained(path: str, mtime: float) -> tuple[Net, dict]:
    return checkpoints.load(path)


@st.cache_resource(show_spinner=False, max_entries=4)
def _images(source: str, data_dir: str, roots: tuple) -> data.Dataset:
    if source == "shapes":  # a few hundred test images are plenty here, and drawn in a blink
        return data.make_shapes(n_train=0, n_test=200)
    return data.load(source, data_dir, roots=roots)


def images_of(weights: Weights) -> tuple[data.Dataset, str]:
    """(test images, sentence for the page): from the data set the weights were trained on; the untrained net gets
    CIFAR-10 when it is here, else the synthetic shapes."""
    try:
        with st.spinner(_("Loading test images…")):  # drawn only when it takes a moment: the first load
            images = _images(weights.source, state.data_dir(), tuple(state.data_roots()))
    except data.DataError as e:
        images = _images("shapes", state.data_dir(), ())
        missing = _("synthetic **shapes** test images: {source}, which the net trained on, is not here ({reason})")
        return images, missing.format(source=plain.md(weights.source), reason=plain.md(e))
    if images.name == "cifar10":
        return images, _("CIFAR-10 test images")
    if images.synthetic:
        if weights.source == "shapes":
            return images, _("test images of the built-in synthetic **shapes** set (the data set the net trained on)")
        return images, _("test images of the built-in synthetic **shapes** set (CIFAR-10 is not downloaded on this server)")
    return images, _("test images of {name}, the image folder the net trained on").format(name=plain.md(images.name))


def _untrained_weights() -> Weights:
    source = "cifar10" if data.cifar10_present(state.data_dir()) else "shapes"
    return Weights(_untrained(), data.CIFAR10_CLASSES, TUTORIAL_MEAN, TUTORIAL_STD, _("untrained Net (seed 0)"), source)


def latest_weights() -> tuple[Weights | None, str]:
    """The newest finished Net/WideNet run's weights, or None and the reason."""
    found = anatomy.newest_checkpoint(state.manager())
    if found is None:
        return None, _("No trained Net checkpoint exists yet: train one in the lab (any run of Net or WideNet that finishes).")
    run, path = found
    try:
        with st.spinner(_("Loading the checkpoint…")):
            model, info = _trained(str(path), path.stat().st_mtime)
    except (checkpoints.CheckpointError, OSError) as e:
        return None, _("The newest checkpoint could not be loaded: {reason}").format(reason=plain.md(e))
    cfg = info["config"]
    epochs = len(run.epochs)
    label = ngettext("run {run} ({model}, {epochs} epoch on {data})", "run {run} ({model}, {epochs} epochs on {data})", epochs)
    label = label.format(run=run.id, model=cfg.model, epochs=epochs, data=plain.md(i18n.data_label(run.data_label)))
    return Weights(model, tuple(info["classes"]), tuple(cfg.mean), tuple(cfg.std), label, cfg.data), ""


def chosen_weights() -> Weights:
    """The weights picked in the setup widget: the latest trained ones when asked for and there, else untrained."""
    if st.session_state.get("cnn_weights") == TRAINED:
        weights, _why = latest_weights()
        if weights is not None:
            return weights
    return _untrained_weights()


def chosen() -> tuple[Weights, torch.Tensor, str]:
    """The weights and the image picked in the setup widget (defaults before it has run); the image comes from the
    data set the weights know, so its true class is one of theirs."""
    weights = chosen_weights()
    images, _sentence = images_of(weights)
    index = int(st.session_state.get("cnn_index", 0)) % len(images.test_x)
    image = images.test_x[index]
    true = plain.md(i18n.class_name(images.classes[int(images.test_y[index])]))
    caption = _("{data} test image #{index} (true class: {true})")
    return weights, image, caption.format(data=plain.md(i18n.data_label(images.label)), index=index, true=true)


def _big(image: torch.Tensor, scale: int = 5) -> np.ndarray:
    """uint8 [3, H, W] -> HWC enlarged with square pixels, so a 32x32 image is visible."""
    return np.kron(image.permute(1, 2, 0).numpy(), np.ones((scale, scale, 1), dtype=np.uint8))


def _top3_chart(top: list[tuple[str, float]], key: str) -> None:
    names, chances = [plain.plot(i18n.class_name(c)) for c, _p in top][::-1], [p for _c, p in top][::-1]
    fig = go.Figure(go.Bar(x=[p * 100 for p in chances], y=names, orientation="h"))
    fig.update_traces(text=[i18n.percent(p, space="") for p in chances], textposition="auto")
    fig.update_layout(
        height=180, margin=dict(l=10, r=10, t=30, b=10), xaxis_title=_("probability (%)"), title=_("Top-3 prediction")
    )
    fig.update_xaxes(range=[0, 100])
    st.plotly_chart(i18n.localise(fig), key=key, config=charts.CONFIG)


def setup() -> None:
    """Pick the weights, then an image of the data set they know, for the widgets below."""
    c1, c2 = st.columns(2)
    c1.radio(_("Weights"), [UNTRAINED, TRAINED], key="cnn_weights", horizontal=True, format_func=i18n.bound().gettext)
    trained, reason = latest_weights()
    if st.session_state.get("cnn_weights") == TRAINED:
        if trained is None:
            c1.warning(_("{reason} Showing the untrained net instead.").format(reason=reason))
        else:
            classes = plain.md(", ".join(map(i18n.class_name, trained.classes)))
            c1.caption(_("Using {weights}; classes: {classes}.").format(weights=trained.label, classes=classes))
    images, sentence = images_of(chosen_weights())
    c2.number_input(_("Test image number"), 0, len(images.test_x) - 1, 0, key="cnn_index")
    c2.caption(_("Images: {which}.").format(which=sentence))


def layers() -> None:
    """The chosen image through Net.forward, step by step: output shape and parameters of each step."""
    weights, image, caption = chosen()
    left, right = st.columns([1, 2])
    left.image(_big(image), caption=caption)
    with left:
        _top3_chart(anatomy.top_k(weights.model, image, weights.classes, weights.mean, weights.std), key="cnn_top3")
    rows, _maps = anatomy.layers(weights.model, anatomy.to_input(image, weights.mean, weights.std))
    columns = (_("step in forward"), _("layer"), _("output shape"), _("parameters"))
    table = [dict(zip(columns, (_("input x"), "", "1 × 3 × 32 × 32", 0)))]
    table += [dict(zip(columns, (r.step, r.kind, " × ".join(map(str, r.out_shape)), r.parameters))) for r in rows]
    right.dataframe(table, hide_index=True, height=38 + 35 * len(table))
    total = i18n.number(sum(r.parameters for r in rows), 0)
    in_all = _("{weights}: {count} parameters in all (the pool layer appears twice, with none).")
    right.caption(in_all.format(weights=weights.label, count=total))


def filters() -> None:
    """conv1's filters as small RGB pictures."""
    weights, _image, _caption = chosen()
    pictures = _tiles((anatomy.filters(weights.model.conv1).numpy() * 255).round().astype(np.uint8), 70)
    numbered = [_("filter {number}").format(number=i) for i in range(len(pictures))]  # from 0, as PyTorch indexes them
    st.image(pictures, caption=numbered)
    st.caption(
        _("conv1 weights {shape} of the {weights}.").format(shape=tuple(weights.model.conv1.weight.shape), weights=weights.label)
    )


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
        hovertemplate=_("row %{y}, column %{x}: %{z:.4f}") + "<extra></extra>",
    )  # fmt: skip
    if digits:
        cell = lambda v: i18n.number(v, digits, grouping=False)
        heat.update(text=np.vectorize(cell)(values), texttemplate="%{text}", textfont=dict(size=11))
    fig = go.Figure(heat)
    fig.update_yaxes(autorange="reversed", scaleanchor="x", constrain="domain", showticklabels=not digits, ticks="")
    fig.update_xaxes(constrain="domain", showticklabels=not digits, ticks="")
    i18n.localise(fig)
    fig.update_layout(title=dict(text=title, font=dict(size=14)), height=height, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def _channel_name(layer: str, channel: int, number: bool = True) -> str:
    """conv1's input channels are colours ("0 (red)", or "red" without the number); conv2's are maps ("map 0")."""
    names = _CHANNELS.get(layer)
    if names is None:
        return _("map {number}").format(number=channel)
    colour = _(names[channel])
    return f"{channel} ({colour})" if number else colour


def _sum_text(terms: list[tuple[float, str]]) -> str:
    """A sum written out with its signs, each term named: "0.1200 (red) - 0.0300 (green) + 0.0500 (bias)"."""
    text = ""
    for i, (value, name) in enumerate(terms):
        sign = ("-" if value < 0 else "") if i == 0 else (" - " if value < 0 else " + ")
        text += f"{sign}{i18n.number(abs(value), 4, grouping=False)} ({name})"
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
    layer = st.radio(_("Convolution"), anatomy.CONVOLUTIONS, horizontal=True, key="cnn_layer")
    conv = getattr(net, layer)
    size = {a.name: a.shape for a in anatomy.activations(net, x)}[layer][-2:]  # the map size forward gives
    c1, c2, c3, c4 = st.columns(4)
    channel = _slider(c1, _("Filter (output channel)"), conv.out_channels - 1, 0, f"cnn_{layer}_channel")
    row = _slider(c2, _("Row"), size[0] - 1, size[0] // 2 - 2, f"cnn_{layer}_row")
    col = _slider(c3, _("Column"), size[1] - 1, size[1] // 2 - 2, f"cnn_{layer}_col")
    inputs = {c: _channel_name(layer, c) for c in range(conv.in_channels)}  # named now, in the page's language
    shown = _slider(c4, _("Input channel shown"), conv.in_channels - 1, 0, f"cnn_{layer}_in", inputs.get)
    step = anatomy.convolution_at(net, x, layer, channel, row, col)
    k = step.kernel.shape[-1]

    left, right = st.columns(2)
    if layer == "conv1":  # the picture itself, the window over all three colours at once
        hover = _("row %{y}, column %{x}") + "<extra></extra>"
        picture = go.Figure(go.Image(z=image.permute(1, 2, 0).numpy(), hovertemplate=hover))
        title = dict(text=_("input image"), font=dict(size=14))
        i18n.localise(picture).update_layout(height=300, margin=dict(l=10, r=10, t=40, b=10), title=title)
    else:
        picture = _map(step.inputs[shown].numpy(), _("conv2's input: pooled map {number}").format(number=shown), scale="viridis")
    _outline(picture, step.top, step.left, k, k)
    left.plotly_chart(picture, key="cnn_conv_input", config=charts.CONFIG)
    result = _map(step.output.numpy(), _("{layer} output, filter {number} (before ReLU)").format(layer=layer, number=channel))
    _outline(result, row, col, 1, 1)
    right.plotly_chart(result, key="cnn_conv_output", config=charts.CONFIG)
    h, w = step.inputs.shape[1:]
    window = {
        "k": k, "top": step.top, "bottom": step.top + k - 1, "left": step.left, "right": step.left + k - 1, "row": row,
        "col": col, "image": caption,
    }  # fmt: skip
    if layer == "conv1":
        outlined = _(
            "Outlined: the {k}×{k} window at rows {top}–{bottom}, columns {left}–{right} of the image, and the one value "
            "it gives, at row {row}, column {col} of the output. {image}."
        )
    else:
        outlined = _(
            "Outlined: the {k}×{k} window at rows {top}–{bottom}, columns {left}–{right} of the {h}×{w} maps conv2 reads, "
            "and the one value it gives, at row {row}, column {col} of the output. {image}."
        )
    st.caption(outlined.format(**window, h=h, w=w))

    name = _("channel {name}").format(name=_channel_name(layer, shown)) if layer == "conv1" else _channel_name(layer, shown)
    cols = st.columns(3)
    cells = ((_("window"), step.window), (_("kernel"), step.kernel), (_("window × kernel"), step.products))
    for column, (what, values), key in zip(cols, cells, ("window", "kernel", "products")):
        fig = _map(values[shown].numpy(), f"{what}, {name}", digits=2 if key == "window" else 3, height=280)
        column.plotly_chart(fig, key=f"cnn_conv_{key}", config=charts.CONFIG)
    if layer == "conv1":
        holds = _(
            "Input {name} of {count}: the window holds values of the normalised image, (pixel / 255 − mean) / std; the "
            "kernel is `{kernel}`; the products add up to this channel's term of the sum below."
        )
    else:
        holds = _(
            "Input {name} of {count}: the window holds values of pool(relu(conv1(x))); the kernel is `{kernel}`; the "
            "products add up to this channel's term of the sum below."
        )
    st.caption(holds.format(name=name, count=step.window.shape[0], kernel=f"{layer}.weight[{channel}, {shown}]"))

    parts = [(v, _channel_name(layer, c, number=False)) for c, v in enumerate(step.per_channel.tolist())]
    by_hand = _(
        "**By hand:** the {count} products ({channels} channels × {k}×{k}), added up channel by channel, plus the bias: "
        "{terms} = **{total}**"
    )
    terms = _sum_text([*parts, (step.bias, _("bias"))])
    n4 = lambda v: i18n.number(v, 4, grouping=False)
    st.markdown(
        by_hand.format(count=step.products.numel(), channels=step.window.shape[0], k=k, terms=terms, total=n4(step.total))
    )
    st.markdown(f"**PyTorch:** `{step.code}` = **{n4(step.pytorch)}**")
    gap = abs(step.total - step.pytorch)
    if gap <= 1e-4 * max(1.0, abs(step.pytorch)):
        same = _("The same value: they differ by {gap}, float32 rounding.").format(gap=i18n.scientific(gap))
        st.success(same, icon=":material/check_circle:")
    else:
        differ = _("They differ by {gap}: the hand sum does not match the layer.").format(gap=i18n.decimal(f"{gap:.3g}"))
        st.error(differ, icon=":material/cancel:")


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
        hover = _("unit %{x}: %{y:.4f}") + "<extra></extra>"
        fig = go.Figure(go.Bar(x=list(range(len(values))), y=values, hovertemplate=hover))
        fig.update_layout(height=170, xaxis_title=_("unit"), bargap=0.1)
    else:
        shown = values * 100 if percent else values
        labels = [i18n.percent(v, scaled=True) if percent else i18n.number(v, 2, grouping=False) for v in shown]
        colours = ["#D0421F" if i == int(values.argmax()) else "#5B8DEF" for i in range(len(values))]
        bar = go.Bar(
            x=shown, y=[plain.plot(i18n.class_name(n)) for n in names], orientation="h", marker_color=colours, text=labels
        )
        fig = go.Figure(bar.update(textposition="outside", cliponaxis=False))
        fig.update_yaxes(autorange="reversed")  # the first class on top
        span = float(np.abs(shown).max()) or 1.0
        low = 0 if percent or shown.min() >= 0 else -1.3 * span  # room for the labels outside the bars
        fig.update_xaxes(
            range=[low, 100 if percent else 1.3 * span], title=_("probability (%)") if percent else _("score (logit)")
        )
        fig.update_layout(height=50 + 24 * len(names))
    i18n.localise(fig)
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
            st.image(pictures, caption=names, alt=[_("{layer} channel {number}").format(layer=a.name, number=c) for c in names])
            top_text = i18n.number(top, 2, grouping=False)
            colours = _("blue −{top}, white 0, red +{top}") if signed else _("dark 0 to yellow {top}")
            maps = ngettext(
                "{count} map of {h}×{w}, channels from 0; colour: {colours}.",
                "{count} maps of {h}×{w}, channels from 0; colour: {colours}.",
                len(values),
            )
            st.caption(maps.format(count=len(values), h=values.shape[1], w=values.shape[2], colours=colours.format(top=top_text)))
        elif a.name in ("fc3 (logits)", "softmax"):
            st.plotly_chart(
                _bars(values, list(weights.classes), percent=a.name == "softmax"), key=f"cnn_act_{i}", config=charts.CONFIG
            )
        else:
            st.plotly_chart(_bars(values, None), key=f"cnn_act_{i}", config=charts.CONFIG)
    best = int(steps[-1].value.argmax())
    answer = _("For {image}, with the {weights}: the net's answer is the largest logit, **{answer}** ({chance}).")
    chance = i18n.percent(float(steps[-1].value[best]), space="")
    st.caption(
        answer.format(
            image=caption, weights=weights.label, answer=plain.md(i18n.class_name(weights.classes[best])), chance=chance
        )
    )


def upload() -> None:
    """Classify an uploaded image: any size or format, refused with a message when unusable."""
    weights, _image, _caption = chosen()
    limit_mb = anatomy.MAX_UPLOAD_BYTES // 2**20
    file = st.file_uploader(
        _("An image of your own"), key="cnn_upload", max_upload_size=limit_mb, help=_("up to {size} MB").format(size=limit_mb)
    )
    if file is None:
        classes = plain.md(", ".join(map(i18n.class_name, weights.classes)))
        st.caption(
            _("The prediction will come from the {weights}, which knows: {classes}.").format(
                weights=weights.label, classes=classes
            )
        )
        return
    try:
        image = anatomy.image_from_upload(file.getvalue(), file.name)
    except data.DataError as e:
        st.error(_("That file cannot be used: {reason}.").format(reason=plain.md(e)))
        return
    left, right = st.columns([1, 2])
    left.image(_big(image), caption=_("{file}, as the net sees it (32×32)").format(file=plain.md(file.name)))
    with right:
        _top3_chart(anatomy.top_k(weights.model, image, weights.classes, weights.mean, weights.std), key="cnn_upload_top3")
        st.caption(_("Predicted by the {weights}.").format(weights=weights.label))
