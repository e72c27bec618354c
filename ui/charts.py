"""Plotly figures drawn from a run Snapshot: loss, accuracy per epoch, per-class bars, confusion matrix, overlays."""

from __future__ import annotations

import pandas  # noqa: F401  plotly imports it lazily, and two sessions' script threads importing it at once saw a half-initialised module
import plotly.graph_objects as go

from classroom.runs import Snapshot
from ui import i18n, plain
from ui.i18n import _

HEIGHT = 320
# Streamlit's config for every chart: no Plotly toolbar. At 390 px it covered the chart titles, and its eight
# buttons were eight tab stops per chart for a keyboard user; Streamlit's own fullscreen button stays.
CONFIG = {"displayModeBar": False}


def smooth(values: list[float], weight: float = 0.8) -> list[float]:
    """Exponential moving average, debiased so the first points are not pulled towards 0 (TensorBoard's smoothing)."""
    out, average = [], 0.0
    for i, v in enumerate(values, 1):
        average = weight * average + (1 - weight) * v
        out.append(average / (1 - weight**i))
    return out


def _layout(fig: go.Figure, title: str, x: str, y: str, **extra) -> go.Figure:
    """Title, axis titles (all already in the page's language) and the look every run chart shares."""
    i18n.localise(fig)
    fig.update_layout(
        title=title,
        xaxis_title=x,
        yaxis_title=y,
        height=HEIGHT,
        margin=dict(l=10, r=10, t=40, b=70),
        # The legend under the x axis title, not beside the title: on a phone the two overlapped.
        legend=dict(orientation="h", yref="container", yanchor="bottom", y=0, xanchor="left", x=0),
        uirevision="keep",  # zoom and hidden traces survive the live redraws
        **extra,
    )
    return fig


def loss_figure(snap: Snapshot) -> go.Figure:
    """Training loss per log interval (raw) and its moving average, with epoch boundaries marked."""
    steps = [s for s, _ in snap.losses]
    losses = [v for _, v in snap.losses]
    fig = go.Figure()
    mode = "lines+markers" if len(steps) < 60 else "lines"
    fig.add_scatter(x=steps, y=losses, mode=mode, name=_("loss per interval"), line=dict(color="#9aa5b1", width=1))
    fig.add_scatter(x=steps, y=smooth(losses), mode="lines", name=_("smoothed"), line=dict(color="#e4572e", width=3))
    if snap.last_batch and losses:
        # The epoch boundaries as one trace of segments split by None: add_vline (or one shape per epoch)
        # validates every shape again, seconds for 200 epochs on a chart redrawn every second.
        per_epoch, low, high = snap.last_batch["steps_per_epoch"], min(losses), max(losses)
        ends = range(per_epoch, (len(snap.epochs) + 1) * per_epoch, per_epoch)
        x = [v for end in ends for v in (end, end, None)]
        fig.add_scatter(x=x, y=[low, high, None] * len(ends), mode="lines", name=_("epoch end"), hoverinfo="skip",
                        showlegend=False, line=dict(dash="dot", width=1, color="gray"))  # fmt: skip
    return _layout(fig, _("Training loss"), _("step"), _("cross-entropy loss"))


def accuracy_figure(snap: Snapshot) -> go.Figure:
    """Train and test accuracy after each epoch, in percent."""
    epochs = [e["epoch"] for e in snap.epochs]
    fig = go.Figure()
    train, test = [100 * e["train_accuracy"] for e in snap.epochs], [100 * e["test_accuracy"] for e in snap.epochs]
    fig.add_scatter(x=epochs, y=train, mode="lines+markers", name=_("train"), line=dict(color="#29a3a3"))
    fig.add_scatter(x=epochs, y=test, mode="lines+markers", name=_("test"), line=dict(color="#e4572e"))
    total = snap.planned_epochs
    fig.update_xaxes(range=[0.5, total + 0.5], dtick=max(1, total // 10))
    return _layout(fig, _("Accuracy per epoch"), _("epoch"), _("accuracy (%)"), yaxis_range=[0, 100])


def per_class_figure(per_class: dict[str, float], title: str | None = None) -> go.Figure:
    """One bar per class, in percent, labelled with its value; title: already translated (default: test accuracy)."""
    names = [plain.plot(i18n.class_name(n)) for n in per_class]  # class names: user-given (or ours, in Czech)
    values = [100 * v for v in per_class.values()]
    fig = go.Figure(go.Bar(x=names, y=values, text=[i18n.number(v, 1) for v in values], textposition="outside"))
    _layout(fig, title or _("Test accuracy per class"), _("class"), _("accuracy (%)"), yaxis_range=[0, 110])
    return fig.update_layout(margin=dict(b=10))  # one trace, no legend


def confusion_figure(confusion: list[list[int]], classes, normalised: bool = False) -> go.Figure:
    """Heatmap of [true, predicted] counts, or of row fractions (each true class sums to 1)."""
    if normalised:
        z = [[c / max(sum(row), 1) for c in row] for row in confusion]
        text = [[i18n.number(v, 2) for v in row] for row in z]
    else:
        z, text = confusion, [[str(c) for c in row] for row in confusion]
    names = [plain.plot(i18n.class_name(c)) for c in classes]  # user-given: an image folder's subfolders, a checkpoint's list
    fig = go.Figure(
        go.Heatmap(
            z=z, x=names, y=names, text=text, texttemplate="%{text}", colorscale="Blues",
            hovertemplate=_("true %{y}, predicted %{x}: %{text}") + "<extra></extra>",
        )
    )  # fmt: skip
    fig.update_yaxes(autorange="reversed")
    title = _("Confusion matrix (fraction of each true class)") if normalised else _("Confusion matrix (counts)")
    _layout(fig, title, _("predicted"), _("true"))
    fig.update_layout(height=HEIGHT + 140, margin=dict(b=10))  # no legend: a colour bar
    return fig


def run_label(snap: Snapshot) -> str:
    """How a run is named in legends and pickers: user-given text, for plain.plot() or plain.line()."""
    name = f" {snap.config.name}" if snap.config.name else ""
    return f"{snap.id}{name} ({snap.config.model}, {i18n.data_label(snap.data_label or snap.config.data)})"


def overlay_loss_figure(snaps: list[Snapshot]) -> go.Figure:
    """The smoothed loss of several runs against images seen (comparable across batch sizes)."""
    fig = go.Figure()
    for s in snaps:
        images = [step * s.config.batch_size for step, _ in s.losses]
        fig.add_scatter(x=images, y=smooth([v for _, v in s.losses]), mode="lines", name=plain.plot(run_label(s)))
    return _below(_layout(fig, _("Training loss (smoothed)"), _("training images seen"), _("cross-entropy loss")), len(snaps))


def overlay_accuracy_figure(snaps: list[Snapshot]) -> go.Figure:
    """Test accuracy per epoch of several runs."""
    fig = go.Figure()
    for s in snaps:
        epochs, accuracy = [e["epoch"] for e in s.epochs], [100 * e["test_accuracy"] for e in s.epochs]
        fig.add_scatter(x=epochs, y=accuracy, mode="lines+markers", name=plain.plot(run_label(s)))
    longest = max((len(s.epochs) for s in snaps), default=1)
    fig.update_xaxes(tickformat="d", dtick=max(1, longest // 10))  # whole epochs: never 1.2, 1.4, ...
    title = _("Test accuracy per epoch")
    return _below(_layout(fig, title, _("epoch"), _("accuracy (%)"), yaxis_range=[0, 100]), len(snaps))


def _below(fig: go.Figure, runs: int) -> go.Figure:
    """The legend under the plot, one run per row: run labels are long, and above the plot they covered its title."""
    fig.update_layout(legend=dict(orientation="v"), height=HEIGHT + 22 * runs, margin=dict(b=50 + 22 * runs))
    return fig
