"""Widgets of lesson 8: the script it runs, the loss of both runs, and where their time went."""

from __future__ import annotations

import json
import os

import plotly.graph_objects as go
import streamlit as st

from classroom import parallel
from ui import i18n
from ui.charts import CONFIG
from ui.i18n import N_, _, ngettext

LAUNCHES = ("one", "two")  # the folders the lesson's blocks launch into, under parallel.workdir()


def script() -> None:
    """ddp_train.py, highlighted: the text the lesson's next block writes to a file and both runs start."""
    st.markdown(_("**`ddp_train.py`**: the whole script, plain PyTorch. The block below writes exactly this text to a file."))
    st.code(parallel.SCRIPT, language="python", line_numbers=True, wrap_lines=True)  # nothing hidden off the side


def _launches() -> dict[str, dict] | None:
    """The two launches the lesson's blocks ran in this server process, read back from their launch.json."""
    try:
        found = {name: json.loads((parallel.workdir() / name / "launch.json").read_text()) for name in LAUNCHES}
    except (OSError, ValueError):
        st.warning(_("The two runs above did not finish in this server process (see the blocks above): nothing to draw."))
        return None
    return found


def _label(run: dict) -> str:
    """'1 process, batch 32' or '2 processes (DDP), 16 each', from what the processes reported."""
    ranks = run["ranks"]
    if len(ranks) == 1:
        return _("1 process, batch {batch}").format(batch=ranks[0]["batch"])
    each = ngettext("{count} process (DDP), {batch} each", "{count} processes (DDP), {batch} each", len(ranks))
    return each.format(count=len(ranks), batch=ranks[0]["batch"])


def losses() -> None:
    """Per-step loss of the one-process run and the two-process DDP run on one chart, and their largest difference."""
    runs = _launches()
    if runs is None:
        return
    curves = {name: run["ranks"][0]["losses"] for name, run in runs.items()}
    fig = go.Figure()
    # The one process wide and grey under the DDP run's thin dashes: where they agree, both stay visible.
    for name, line in (("one", dict(color="#9aa5b1", width=6)), ("two", dict(color="#e4572e", width=2, dash="dash"))):
        steps = list(range(1, len(curves[name]) + 1))
        fig.add_scatter(x=steps, y=curves[name], name=_label(runs[name]), mode="lines", line=line)
    batch = runs["one"]["ranks"][0]["batch"]
    global_batch = _("loss of the global batch of {batch}").format(batch=batch)
    fig.update_layout(
        title=_("Training loss per step"), xaxis_title=_("step"), yaxis_title=global_batch, height=340,
        margin=dict(l=10, r=10, t=40, b=70),
        legend=dict(orientation="h", yref="container", yanchor="bottom", y=0, xanchor="left", x=0),
    )  # fmt: skip
    st.plotly_chart(i18n.localise(fig), config=CONFIG, key="parallel_losses")
    gaps = [abs(a - b) for a, b in zip(curves["one"], curves["two"])]
    worst = max(range(len(gaps)), key=gaps.__getitem__)
    if gaps[worst] < 1e-4:
        verdict = _(
            "The curves lie on each other: the largest difference is **{gap}**, at step {step} (loss {one} against {two}); "
            "{same} of {steps} steps agree to the last bit."
        )
    else:
        verdict = _(
            "The curves differ: the largest difference is **{gap}**, at step {step} (loss {one} against {two}); {same} of "
            "{steps} steps agree to the last bit."
        )
    n6 = lambda v: i18n.number(v, 6, grouping=False)
    st.markdown(
        verdict.format(
            gap=i18n.scientific(gaps[worst]), step=worst + 1, one=n6(curves["one"][worst]), two=n6(curves["two"][worst]),
            same=sum(g == 0 for g in gaps), steps=len(gaps),
        )
    )  # fmt: skip


def timing() -> None:
    """Where each launch's wall-clock time went: launching, each process starting, the training loop, exiting."""
    runs = _launches()
    if runs is None:
        return
    rows = [_parts(run) for run in runs.values()]
    longest = max(r["total"] for r in rows)
    fig = go.Figure()
    for part, (english, color) in PARTS.items():
        words = _(english)
        fig.add_bar(
            y=[r["label"] for r in rows], x=[r[part] for r in rows], orientation="h", name=words, marker_color=color,
            text=[f"{i18n.number(r[part], 1)} s" if r[part] > 0.06 * longest else "" for r in rows], textposition="inside",
            insidetextanchor="middle", hovertemplate="%{x:.3f} s<extra>" + words + "</extra>",
        )  # fmt: skip
    i18n.localise(fig)  # the hover's seconds and the axis: decimal comma
    fig.update_layout(
        barmode="stack", title=_("Wall-clock time, from the command to its results"), xaxis_title=_("seconds"), height=300,
        margin=dict(l=10, r=10, t=40, b=110), yaxis=dict(autorange="reversed"),  # b: the legend's two lines
        legend=dict(orientation="h", traceorder="normal", yref="container", yanchor="bottom", y=0, xanchor="left", x=0),
    )  # fmt: skip
    st.plotly_chart(fig, config=CONFIG, key="parallel_timing")
    st.dataframe(
        [
            {
                _("run"): r["label"],
                _("in all (s)"): round(r["total"], 2),
                **{_(PARTS[part][0]).split(":")[0] + " (s)": round(r[part], 3) for part in PARTS},
                _("ms per training step"): round(r["step_ms"], 2),
            }
            for r in rows
        ],
        hide_index=True,
    )
    for line in findings(*rows):
        st.markdown(f"- {line}")


PARTS = {  # part of a launch -> (legend, colour); a legend's words before its colon name the table's column
    "launch": (N_("launching: Python starts (and torchrun, which imports torch itself and starts the others)"), "#d9dee3"),
    "start": (N_("starting: import torch, meet the other processes, build model, DDP and optimizer"), "#9aa5b1"),
    "train": (N_("training: the loop over the steps"), "#e4572e"),
    "exit": (N_("ending: save the weights, Python unloads torch, the launcher sees the exit"), "#f3c1b0"),
}


def _parts(run: dict) -> dict:
    """The launch's wall-clock seconds cut at the processes' own clock readings; the parts add up to the whole."""
    ranks = run["ranks"]
    started = min(r["started_at"] for r in ranks)  # the first process running the script
    ready = max(r["started_at"] + r["startup_seconds"] for r in ranks)  # the last one ready: the others wait for it
    trained = max(r["started_at"] + r["startup_seconds"] + r["train_seconds"] for r in ranks)
    end = run["launched_at"] + run["seconds"]
    return {
        "label": _label(run), "total": run["seconds"], "launch": started - run["launched_at"], "start": ready - started,
        "train": trained - ready, "exit": end - trained, "step_ms": 1000 * (trained - ready) / len(ranks[0]["losses"]),
    }  # fmt: skip


def findings(one: dict, two: dict) -> list[str]:
    """What the timing says, in sentences built from its numbers."""
    n1, n2 = (lambda v: i18n.number(v, 1)), (lambda v: i18n.number(v, 2))
    numbers = {
        "two": n1(two["total"]), "one": n1(one["total"]), "ratio": n1(two["total"] / one["total"]),
        "overhead": n1(two["total"] - two["train"]), "train": n2(two["train"]), "two_ms": n2(two["step_ms"]),
        "one_ms": n2(one["step_ms"]), "cores": os.cpu_count(),
    }  # fmt: skip
    lines = [
        _(
            "From command to results, two processes took **{two} s** and one process **{one} s** ({ratio}× as long). Of "
            "the two processes' {two} s, {overhead} s went to launching, starting and ending, and {train} s to training: "
            "a job that trains for hours pays those seconds once."
        )
    ]
    if two["step_ms"] > one["step_ms"]:
        lines.append(
            _(
                "Even the training loop is slower: **{two_ms} ms per step** in two processes against {one_ms} ms in one, "
                "though each process does half the samples. A step of this small model is a fraction of a millisecond of "
                "arithmetic; the all-reduce that every step now waits for (through gloo, over localhost, at the pace of "
                "the slower process) costs more than the half batch saves."
            )
        )
    else:
        lines.append(
            _(
                "The training loop was faster in two processes: {two_ms} ms per step against {one_ms} ms in one, each "
                "process doing half the samples; the all-reduce cost less than that saved."
            )
        )
    lines.append(
        _(
            "This server has {cores} CPU cores, shared by everything it runs: two processes each doing half of a tiny "
            "step gain nothing from cores that are busy anyway. On GPUs the balance turns: each GPU is a processor of its "
            "own, a large model's step is many milliseconds of arithmetic, and DDP overlaps the all-reduce (over NVLink "
            "or InfiniBand) with the rest of backward, so N GPUs come near N times the samples per second."
        )
    )
    return [line.format(**numbers) for line in lines]
