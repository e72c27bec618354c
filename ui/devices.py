"""Widgets of the CPU/GPU lesson (live timing, the widening exercise) and the classifier lesson (into the lab)."""

from __future__ import annotations

import os
import time

import plotly.graph_objects as go
import streamlit as st
from streamlit.errors import StreamlitAPIException

from classroom import timing
from classroom.config import PRESETS
from classroom.models import WideNet, parameter_count
from ui import state

BATCH_SIZES = (1, 4, 32, 128)  # from the tutorial's 4 up to a GPU-friendly batch, small enough for 2 busy cores


def _measure() -> tuple[float, list[timing.Timing]]:
    """(when, timings): one measurement now."""
    with st.spinner(f"Timing forward + backward on {', '.join(timing.devices())}…"):
        return time.time(), timing.measure(batch_sizes=BATCH_SIZES)


# A class opening this lesson together would otherwise start 30 measurements at once: each slower for the
# others, and every page of the server with them (bench/load.py). One measurement serves the class for ten
# minutes (concurrent first visits wait for it); "Measure again" times afresh for this student alone. Process-wide,
# not st.cache_data: a client's clear_cache message must not make the class measure again.
_class_measurement = state.ProcessWide(_measure, ttl=600)


def timing_chart() -> None:
    """Images per second of Net and WideNet per batch size and device, measured live on this machine."""
    again = st.button("Measure again", key="timing_again", help="the numbers vary with what else this machine is doing")
    if again:
        st.session_state.timings = _measure()
    when, rows = _timings()
    st.caption(f"Measured {time.strftime('%H:%M:%S', time.localtime(when))}, {_ago(time.time() - when)}.")
    st.caption(
        f"The CPU is timed with {timing.CPU_THREADS} of this machine's {os.cpu_count()} cores: a class shares the server, "
        "and one core per student is the fair share (and gives steadier numbers on a busy machine)."
    )
    fig = go.Figure()
    for model in dict.fromkeys(r.model for r in rows):
        for device in dict.fromkeys(r.device for r in rows):
            pick = [r for r in rows if r.model == model and r.device == device]
            fig.add_scatter(
                x=[r.batch_size for r in pick],
                y=[r.images_per_second for r in pick],
                name=f"{model} on {timing.label(device)}",
                mode="lines+markers",
                line=dict(dash="solid" if device == "cpu" else "dash"),
            )
    fig.update_xaxes(type="log", title="batch size", tickvals=list(BATCH_SIZES))
    fig.update_yaxes(title="images per second (forward + backward)", rangemode="tozero")
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=10, b=10), legend=dict(orientation="h", y=-0.2))
    st.plotly_chart(fig, key="timing_chart")
    st.dataframe(
        [
            {
                "model": r.model,
                "parameters": r.parameters,
                "device": timing.label(r.device),
                "batch size": r.batch_size,
                "ms per step": round(1000 * r.seconds, 2),
                "images / s": round(r.images_per_second),
            }
            for r in rows
        ],
        hide_index=True,
    )
    for line in findings(rows):
        st.markdown(f"- {line}")


def _timings() -> tuple[float, list[timing.Timing]]:
    """This student's own measurement if they asked for one, else the class's."""
    return st.session_state.get("timings") or _class_measurement()


def reference() -> None:
    """GPU figures measured elsewhere (BENCHMARKS.md), labelled with their machine, beside this server's live CPU rate."""
    try:
        figures = timing.reference_figures()
    except timing.ReferenceFiguresError as e:
        st.warning(f"No reference figures to show: {e}.")
        return
    _, rows = _timings()
    cpu = f"this server's {timing.label('cpu')}, live estimate"
    st.markdown(f"**Reference: {figures.machine}**, torch {figures.torch}, measured {figures.measured}.")
    st.caption(f"Data: {figures.data}. Read from BENCHMARKS.md, where each figure is described.")
    st.dataframe(
        [
            {
                "run": run.run.replace("`", ""),
                "batch size": run.batch_size,
                f"{figures.machine} (reference)": _seconds(run.seconds_text, run),
                cpu: _estimate(timing.live_estimate(rows, run), run),
                "test accuracy (reference)": "" if run.accuracy is None else f"{run.accuracy:g} %",
            }
            for run in figures.runs
        ],
        hide_index=True,
        key="reference_table",
    )
    st.caption(
        f"The live estimate is {timing.EPOCH_IMAGES:,} images per epoch at the forward + backward rate timed above for "
        "the run's batch size: a lower bound, as a real epoch also steps the optimizer and gathers its batches. "
        "Only Net is timed live, so FastCNN's runs have none."
    )
    for line in reference_findings(figures, rows):
        st.markdown(f"- {line}")


def _seconds(figure: str, run: timing.ReferenceRun) -> str:
    """A figure with what it counts: "41.8 s per epoch", "2.0 s for 2 epochs"."""
    return f"{figure} s per epoch" if run.per_epoch else f"{figure} s for {run.epochs} epoch{'s' if run.epochs > 1 else ''}"


def _estimate(seconds: float | None, run: timing.ReferenceRun) -> str:
    return "not timed here" if seconds is None else "≈ " + _seconds(f"{seconds:.0f}" if seconds >= 10 else f"{seconds:.1f}", run)


def reference_findings(figures: timing.ReferenceFigures, rows: list[timing.Timing]) -> list[str]:
    """Per batch size timed live, the reference machine's fastest epoch beside this CPU's estimate, from the numbers."""
    timed = [run for run in figures.runs if timing.live_estimate(rows, run)]
    lines = []
    for batch in sorted({run.batch_size for run in timed}):
        run = min((r for r in timed if r.batch_size == batch), key=lambda r: r.seconds[0] / r.counted_epochs)
        low, high = (s / run.counted_epochs for s in run.seconds)
        cpu = timing.live_estimate(rows, run) / run.counted_epochs
        gpu = run.seconds_text if run.per_epoch else _span(f"{low:.2f}", f"{high:.2f}")
        ratio = _span(f"{cpu / high:.1f}", f"{cpu / low:.1f}")
        lines.append(
            f"At batch size {batch}, {figures.machine} took {gpu} s per epoch ({run.run}); at the rate timed above this "
            f"server's {timing.label('cpu')} would need at least {cpu:.1f} s: **{ratio}×** the GPU's time."
        )
    return lines


def _span(low: str, high: str) -> str:
    """One number, or a range when its ends differ as shown."""
    return low if low == high else f"{low}-{high}"


def _ago(seconds: float) -> str:
    return "just now" if seconds < 10 else f"{seconds / 60:.0f} min ago" if seconds >= 90 else f"{seconds:.0f} s ago"


def findings(rows: list[timing.Timing]) -> list[str]:
    """What the measurement says, in sentences built from its numbers."""
    by = {(r.model, r.device, r.batch_size): r for r in rows}
    small, large = min(BATCH_SIZES), max(BATCH_SIZES)
    lines = []
    for device in dict.fromkeys(r.device for r in rows):
        net_s, net_l = by.get(("Net", device, small)), by.get(("Net", device, large))
        if net_s and net_l:
            gain = net_l.images_per_second / net_s.images_per_second
            lines.append(
                f"On **{timing.label(device)}**, Net handles {gain:.1f}× more images per second "
                f"at batch size {large} than at {small}: a bigger batch spreads the fixed cost of each step over more images."
            )
        wide_l = by.get(("WideNet", device, large))
        if net_l and wide_l:
            lines.append(
                f"On **{timing.label(device)}** at batch size {large}, WideNet ({wide_l.parameters:,} parameters) takes "
                f"{wide_l.seconds / net_l.seconds:.1f}× as long per step as Net ({net_l.parameters:,})."
            )
    for device in (d for d in dict.fromkeys(r.device for r in rows) if d != "cpu"):
        for model, batch in (("Net", small), ("Net", large), ("WideNet", large)):
            gain = timing.speedup(rows, model, batch, device)
            if gain is not None:
                lines.append(f"{model} at batch size {batch}: **{device}** is {gain:.1f}× as fast as the {timing.label('cpu')}.")
    disturbed = [
        (r.device, r.batch_size)
        for r in rows
        if r.model == "WideNet" and (net := by.get(("Net", r.device, r.batch_size))) and r.seconds < net.seconds
    ]
    if disturbed:
        device, batch = disturbed[0]
        lines.append(
            f"⚠️ On {timing.label(device)} at batch size {batch}, WideNet came out faster than Net although it does more "
            "arithmetic per image: other work on this machine disturbed the measurement. Press **Measure again**."
        )
    if all(r.device == "cpu" for r in rows):
        lines.append(
            "This machine has no GPU, so only the CPU is timed. Served from a machine with a CUDA or Apple GPU, "
            "the chart gains a dashed line per GPU, and these notes compare each GPU with the CPU. Below, figures "
            "measured on a GPU elsewhere stand beside this CPU's."
        )
    return lines


def widen() -> None:
    """The tutorial's exercise: choose conv1/conv2 widths, see the parameters and time one step."""
    c1, c2, c3, c4 = st.columns(4)
    width1 = c1.select_slider("conv1 channels", [6, 16, 32, 64], 32, key="widen_c1")
    width2 = c2.select_slider("conv2 channels", [16, 32, 64, 128], 64, key="widen_c2")
    batch = c3.select_slider("batch size", [4, 32, 128], 32, key="widen_batch")
    device = c4.selectbox("device", timing.devices(), key="widen_device", format_func=timing.label)
    model = WideNet(width1, width2)
    st.caption(
        f"WideNet({width1}, {width2}) has {parameter_count(model):,} parameters (Net has {parameter_count(WideNet(6, 16)):,})."
    )
    history = st.session_state.setdefault("widen_history", [])
    if st.button("Time one step", type="primary", key="widen_time"):
        seconds = timing.time_step(model, batch, device, budget=0.3)
        history.insert(
            0,
            {
                "conv1": width1,
                "conv2": width2,
                "parameters": parameter_count(model),
                "device": timing.label(device),
                "batch size": batch,
                "ms per step": round(1000 * seconds, 2),
                "images / s": round(batch / seconds),
            },
        )
    if history:
        st.dataframe(history, hide_index=True)
    else:
        st.caption("Press the button to time it; each measurement is added to a table here so you can compare widths.")


def to_the_lab() -> None:
    """The tutorial preset, and a button that opens the lab with it filled in."""
    preset = PRESETS["tutorial"].to_dict()
    shown = ("model", "epochs", "batch_size", "lr", "momentum", "optimizer", "mean", "std", "log_interval")
    st.markdown("**The tutorial preset**, as the lab will fill it in:")
    st.dataframe([{"setting": k, "value": str(preset[k])} for k in shown], hide_index=True)
    if st.button("Train it in the lab", type="primary", icon=":material/science:", key="to_lab"):
        st.session_state["lab_preset"] = "tutorial"  # the lab page reads this key and fills in the preset
        try:
            st.switch_page("pages/lab.py")
        except StreamlitAPIException:  # the page was run on its own, outside app.py's router
            st.info("The tutorial preset is set: open **Train the CNN** in the Lab section of the sidebar.")
