"""The runs page's pieces: the table of every run, the pick from ?run=ID, the overlay of several runs."""

from __future__ import annotations

import time

import streamlit as st

from classroom.runs import RUN_ID, Snapshot
from ui import charts, i18n, plain
from ui.i18n import _


def rows(snaps: list[Snapshot]) -> list[dict]:
    """One table row per run, its columns named in the page's language."""
    out = []
    for s in snaps:
        last = s.epochs[-1] if s.epochs else None
        out.append(
            {
                _("run"): s.id,
                _("status"): i18n.status_name(s.status),
                _("name"): plain.line(s.config.name),
                _("model"): s.config.model,
                _("data"): plain.line(i18n.data_label(s.data_label or s.config.data)),
                _("device"): s.device,
                _("epochs"): f"{len(s.epochs)} / {s.planned_epochs}",
                _("batch"): s.config.batch_size,
                "lr": s.config.lr,
                _("test accuracy %"): _percent(
                    s.test_accuracy if s.test_accuracy is not None else last and last["test_accuracy"]
                ),
                _("train time (s)"): round(last["train_seconds"], 1) if last else None,
                _("started"): time.strftime("%Y-%m-%d %H:%M", time.localtime(s.created)),
                PROGRESS: s.progress,
            }
        )
    return out


def _percent(fraction: float | None) -> float | None:
    return None if fraction is None else round(100 * fraction, 1)


PROGRESS = "progress"  # the column's key; its header is translated


def table(snaps: list[Snapshot]) -> None:
    bar = st.column_config.ProgressColumn(_("progress"), min_value=0.0, max_value=1.0, format="percent")
    st.dataframe(rows(snaps), hide_index=True, column_config={PROGRESS: bar})


def pick(snaps: list[Snapshot]) -> str | None:
    """The run to open: ?run=ID when it names a known run (else a message), or the selectbox's choice; kept in the URL."""
    ids = [s.id for s in snaps]
    labels = {s.id: plain.line(f"{charts.run_label(s)} · {i18n.status_name(s.status)}") for s in snaps}  # plain text
    asked = st.query_params.get("run")
    if asked is not None and asked not in ids:
        shown = plain.md(repr(asked[:40] + ("…" if len(asked) > 40 else "")))
        if not RUN_ID.match(asked):
            st.warning(_("The link asks for run {run}, which is not a run id. Pick one below.").format(run=shown))
        else:
            st.warning(_("The link asks for run {run}, which is not a run on this server. Pick one below.").format(run=shown))
        asked = None
    # The link opens its run once; after that the selectbox rules (it used to snap back to the link's run).
    if asked is not None and (asked != st.session_state.get("runs.linked") or st.session_state.get("runs.open") is None):
        st.session_state["runs.open"] = asked
    chosen = st.selectbox(
        _("Open a run"), ids, format_func=labels.get, key="runs.open", index=None, placeholder=_("Choose a run")
    )
    st.session_state["runs.linked"] = chosen
    if chosen is not None:
        st.query_params["run"] = chosen
    elif "run" in st.query_params:
        del st.query_params["run"]
    return chosen


def overlay(snaps: list[Snapshot]) -> None:
    """Loss and test accuracy of several runs on the same axes."""
    labels = {s.id: plain.line(charts.run_label(s)) for s in snaps}
    chosen = st.multiselect(
        _("Runs to compare"), list(labels), format_func=labels.get, key="runs.compare", max_selections=8,
        placeholder=_("Choose options"),  # Streamlit's own words, which it does not translate
    )  # fmt: skip
    if not chosen:
        st.caption(_("Pick two or more runs to overlay their curves."))
        return
    picked = [s for s in snaps if s.id in chosen]
    left, right = st.columns(2)
    left.plotly_chart(charts.overlay_loss_figure(picked), key="runs-overlay-loss", config=charts.CONFIG)
    right.plotly_chart(charts.overlay_accuracy_figure(picked), key="runs-overlay-accuracy", config=charts.CONFIG)
