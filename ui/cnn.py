"""Widgets of the CNN anatomy lesson: a real image and a net (untrained or the latest trained), taken apart."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st
import torch

from classroom import anatomy, checkpoints, data
from classroom.config import TUTORIAL_MEAN, TUTORIAL_STD
from classroom.models import Net, build
from ui import plain, state

UNTRAINED, TRAINED = "untrained (random weights)", "latest trained checkpoint"


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
    st.plotly_chart(fig, key=key)


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
    pictures = anatomy.filters(weights.model.conv1).numpy()
    fig = px.imshow(pictures, facet_col=0, facet_col_wrap=min(8, len(pictures)), facet_col_spacing=0.01)
    fig.for_each_annotation(lambda a: a.update(text=f"filter {int(a.text.split('=')[-1]) + 1}"))
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    rows = -(-len(pictures) // 8)
    fig.update_layout(height=60 + 160 * rows, margin=dict(l=10, r=10, t=30, b=10))
    st.plotly_chart(fig, key="cnn_filters")
    st.caption(f"conv1 weights {tuple(weights.model.conv1.weight.shape)} of the {weights.label}.")


def feature_maps() -> None:
    """What each filter of conv1 or conv2 sees in the chosen image (after ReLU)."""
    weights, image, caption = chosen()
    layer = st.radio("Layer", ["conv1", "conv2"], horizontal=True, key="cnn_layer")
    _, maps = anatomy.layers(weights.model, anatomy.to_input(image, weights.mean, weights.std))
    m = maps[layer].numpy()
    wrap = 6 if layer == "conv1" else 8
    fig = px.imshow(
        m, facet_col=0, facet_col_wrap=wrap, color_continuous_scale="viridis", facet_col_spacing=0.01, facet_row_spacing=0.04
    )
    fig.for_each_annotation(lambda a: a.update(text=f"map {int(a.text.split('=')[-1]) + 1}"))
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    fig.update_layout(height=40 + 190 * -(-len(m) // wrap), margin=dict(l=10, r=10, t=30, b=10), coloraxis_showscale=False)
    st.plotly_chart(fig, key="cnn_maps")
    st.caption(f"{len(m)} maps of {m.shape[1]}×{m.shape[2]} for {caption}, {weights.label}.")


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
