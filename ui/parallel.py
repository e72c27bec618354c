"""Widgets of lesson 8: the script it runs, the loss of both runs, and where their time went."""

from __future__ import annotations

import json
import os

import plotly.graph_objects as go
import streamlit as st

from classroom import parallel
from ui.charts import CONFIG

LAUNCHES = ("one", "two")  # the folders the lesson's blocks launch into, under parallel.workdir()


def script() -> None:
    """ddp_train.py, highlighted: the text the lesson's next block writes to a file and both runs start."""
    st.markdown("**`ddp_train.py`**: the whole script, plain PyTorch. The block below writes exactly this text to a file.")
    st.code(parallel.SCRIPT, language="python", line_numbers=True, wrap_lines=True)  # nothing hidden off the side


def _launches() -> dict[str, dict] | None:
    """The two launches the lesson's blocks ran in this server process, read back from their launch.json."""
    try:
        found = {name: json.loads((parallel.workdir() / name / "launch.json").read_text()) for name in LAUNCHES}
    except (OSError, ValueError):
        st.warning("The two runs above did not finish in this server process (see the blocks above): nothing to draw.")
        return None
    return found


def _label(run: dict) -> str:
    """'1 process, batch 32' or '2 processes (DDP), 16 each', from what the processes reported."""
    ranks = run["ranks"]
    if len(ranks) == 1:
        return f"1 process, batch {ranks[0]['batch']}"
    return f"{len(ranks)} processes (DDP), {ranks[0]['batch']} each"


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
    fig.update_layout(
        title="Training loss per step", xaxis_title="step", yaxis_title=f"loss of the global batch of {batch}", height=340,
        margin=dict(l=10, r=10, t=40, b=70),
        legend=dict(orientation="h", yref="container", yanchor="bottom", y=0, xanchor="left", x=0),
    )  # fmt: skip
    st.plotly_chart(fig, config=CONFIG, key="parallel_losses")
    gaps = [abs(a - b) for a, b in zip(curves["one"], curves["two"])]
    worst = max(range(len(gaps)), key=gaps.__getitem__)
    verdict = "The curves lie on each other" if gaps[worst] < 1e-4 else "The curves differ"
    st.markdown(
        f"{verdict}: the largest difference is **{gaps[worst]:.1e}**, at step {worst + 1} "
        f"(loss {curves['one'][worst]:.6f} against {curves['two'][worst]:.6f}); {sum(g == 0 for g in gaps)} of "
        f"{len(gaps)} steps agree to the last bit."
    )


def timing() -> None:
    """Where each launch's wall-clock time went: launching, each process starting, the training loop, exiting."""
    runs = _launches()
    if runs is None:
        return
    rows = [_parts(run) for run in runs.values()]
    longest = max(r["total"] for r in rows)
    fig = go.Figure()
    for part, (words, color) in PARTS.items():
        fig.add_bar(
            y=[r["label"] for r in rows], x=[r[part] for r in rows], orientation="h", name=words, marker_color=color,
            text=[f"{r[part]:.1f} s" if r[part] > 0.06 * longest else "" for r in rows], textposition="inside",
            insidetextanchor="middle", hovertemplate="%{x:.3f} s<extra>" + words + "</extra>",
        )  # fmt: skip
    fig.update_layout(
        barmode="stack", title="Wall-clock time, from the command to its results", xaxis_title="seconds", height=300,
        margin=dict(l=10, r=10, t=40, b=110), yaxis=dict(autorange="reversed"),  # b: the legend's two lines
        legend=dict(orientation="h", traceorder="normal", yref="container", yanchor="bottom", y=0, xanchor="left", x=0),
    )  # fmt: skip
    st.plotly_chart(fig, config=CONFIG, key="parallel_timing")
    st.dataframe(
        [
            {
                "run": r["label"],
                "in all (s)": round(r["total"], 2),
                **{PARTS[part][0].split(":")[0] + " (s)": round(r[part], 3) for part in PARTS},
                "ms per training step": round(r["step_ms"], 2),
            }
            for r in rows
        ],
        hide_index=True,
    )
    for line in findings(*rows):
        st.markdown(f"- {line}")


PARTS = {  # part of a launch -> (legend, colour)
    "launch": ("launching: Python starts (and torchrun, which imports torch itself and starts the others)", "#d9dee3"),
    "start": ("starting: import torch, meet the other processes, build model, DDP and optimizer", "#9aa5b1"),
    "train": ("training: the loop over the steps", "#e4572e"),
    "exit": ("ending: save the weights, Python unloads torch, the launcher sees the exit", "#f3c1b0"),
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
    overhead = two["total"] - two["train"]
    lines = [
        f"From command to results, two processes took **{two['total']:.1f} s** and one process **{one['total']:.1f} s** "
        f"({two['total'] / one['total']:.1f}× as long). Of the two processes' {two['total']:.1f} s, {overhead:.1f} s went "
        f"to launching, starting and ending, and {two['train']:.2f} s to training: a job that trains for hours pays "
        "those seconds once."
    ]
    if two["step_ms"] > one["step_ms"]:
        lines.append(
            f"Even the training loop is slower: **{two['step_ms']:.2f} ms per step** in two processes against "
            f"{one['step_ms']:.2f} ms in one, though each process does half the samples. A step of this small model "
            "is a fraction of a millisecond of arithmetic; the all-reduce that every step now waits for (through gloo, "
            "over localhost, at the pace of the slower process) costs more than the half batch saves."
        )
    else:
        lines.append(
            f"The training loop was faster in two processes: {two['step_ms']:.2f} ms per step against "
            f"{one['step_ms']:.2f} ms in one, each process doing half the samples; the all-reduce cost less than that saved."
        )
    lines.append(
        f"This server has {os.cpu_count()} CPU cores, shared by everything it runs: two processes each doing half of a "
        "tiny step gain nothing from cores that are busy anyway. On GPUs the balance turns: each GPU is a processor of "
        "its own, a large model's step is many milliseconds of arithmetic, and DDP overlaps the all-reduce (over "
        "NVLink or InfiniBand) with the rest of backward, so N GPUs come near N times the samples per second."
    )
    return lines
