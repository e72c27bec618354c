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
from ui import charts, i18n, state
from ui.i18n import _, ngettext

BATCH_SIZES = (1, 4, 32, 128)  # from the tutorial's 4 up to a GPU-friendly batch, small enough for 2 busy cores


def _measure() -> tuple[float, list[timing.Timing]]:
    """(when, timings): one measurement now."""
    with st.spinner(_("Timing forward + backward on {devices}…").format(devices=", ".join(timing.devices()))):
        return time.time(), timing.measure(batch_sizes=BATCH_SIZES)


# A class opening this lesson together would otherwise start 30 measurements at once: each slower for the
# others, and every page of the server with them (bench/load.py). One measurement serves the class for ten
# minutes (concurrent first visits wait for it); "Measure again" times afresh for this student alone. Process-wide,
# not st.cache_data: a client's clear_cache message must not make the class measure again.
_class_measurement = state.ProcessWide(_measure, ttl=600)


def timing_chart() -> None:
    """Images per second of Net and WideNet per batch size and device, measured live on this machine."""
    help = _("the numbers vary with what else this machine is doing")
    again = st.button(_("Measure again"), key="timing_again", help=help)
    if again:
        st.session_state.timings = _measure()
    when, rows = _timings()
    clock = time.strftime("%H:%M:%S", time.localtime(when))
    st.caption(_("Measured {clock}, {ago}.").format(clock=clock, ago=_ago(time.time() - when)))
    st.caption(
        _(
            "The CPU is timed with {threads} of this machine's {cores} cores: a class shares the server, "
            "and one core per student is the fair share (and gives steadier numbers on a busy machine)."
        ).format(threads=timing.CPU_THREADS, cores=os.cpu_count())
    )
    fig = go.Figure()
    for model in dict.fromkeys(r.model for r in rows):
        for device in dict.fromkeys(r.device for r in rows):
            pick = [r for r in rows if r.model == model and r.device == device]
            fig.add_scatter(
                x=[r.batch_size for r in pick],
                y=[r.images_per_second for r in pick],
                name=_("{model} on {device}").format(model=model, device=timing.label(device)),
                mode="lines+markers",
                line=dict(dash="solid" if device == "cpu" else "dash"),
            )
    fig.update_xaxes(type="log", title=_("batch size"), tickvals=list(BATCH_SIZES))
    fig.update_yaxes(title=_("images per second (forward + backward)"), rangemode="tozero")
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=10, b=10), legend=dict(orientation="h", y=-0.2))
    st.plotly_chart(i18n.localise(fig), key="timing_chart", config=charts.CONFIG)
    st.dataframe(
        [
            {
                _("model"): r.model,
                _("parameters"): r.parameters,
                _("device"): timing.label(r.device),
                _("batch size"): r.batch_size,
                _("ms per step"): round(1000 * r.seconds, 2),
                _("images / s"): round(r.images_per_second),
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
        st.warning(_("No reference figures to show: {error}.").format(error=e))
        return
    rows = _timings()[1]
    cpu = _("this server's {cpu}, live estimate").format(cpu=timing.label("cpu"))
    header = _("**Reference: {machine}**, torch {torch}, measured {measured}.")
    st.markdown(header.format(machine=figures.machine, torch=figures.torch, measured=figures.measured))
    st.caption(_("Data: {data}. Read from BENCHMARKS.md, where each figure is described.").format(data=figures.data))
    st.dataframe(
        [
            {
                _("run"): run.run.replace("`", ""),
                _("batch size"): run.batch_size,
                _("{machine} (reference)").format(machine=figures.machine): _seconds(i18n.decimal(run.seconds_text), run),
                cpu: _estimate(timing.live_estimate(rows, run), run),
                _("test accuracy (reference)"): "" if run.accuracy is None else _accuracy(run.accuracy),
            }
            for run in figures.runs
        ],
        hide_index=True,
        key="reference_table",
    )
    st.caption(
        _(
            "The live estimate is {images} images per epoch at the forward + backward rate timed above for "
            "the run's batch size: a lower bound, as a real epoch also steps the optimizer and gathers its batches. "
            "Only Net is timed live, so FastCNN's runs have none."
        ).format(images=i18n.number(timing.EPOCH_IMAGES, 0))
    )
    for line in reference_findings(figures, rows):
        st.markdown(f"- {line}")


def _seconds(figure: str, run: timing.ReferenceRun) -> str:
    """A figure with what it counts: "41.8 s per epoch", "2.0 s for 2 epochs"."""
    if run.per_epoch:
        return _("{seconds} s per epoch").format(seconds=figure)
    return ngettext("{seconds} s for {n} epoch", "{seconds} s for {n} epochs", run.epochs).format(seconds=figure, n=run.epochs)


def _accuracy(percent: float) -> str:
    """A reference accuracy with the digits BENCHMARKS.md gives it: 57.1 %, 87.27 % (57,1 % in Czech)."""
    return i18n.percent(percent, len(f"{percent:g}".partition(".")[2]), scaled=True)


def _estimate(seconds: float | None, run: timing.ReferenceRun) -> str:
    if seconds is None:
        return _("not timed here")
    return "≈ " + _seconds(i18n.number(seconds, 0 if seconds >= 10 else 1, grouping=False), run)


def reference_findings(figures: timing.ReferenceFigures, rows: list[timing.Timing]) -> list[str]:
    """Per batch size timed live, the reference machine's fastest epoch beside this CPU's estimate, from the numbers."""
    timed = [run for run in figures.runs if timing.live_estimate(rows, run)]
    lines = []
    for batch in sorted({run.batch_size for run in timed}):
        run = min((r for r in timed if r.batch_size == batch), key=lambda r: r.seconds[0] / r.counted_epochs)
        low, high = (s / run.counted_epochs for s in run.seconds)
        cpu = timing.live_estimate(rows, run) / run.counted_epochs
        gpu = i18n.decimal(run.seconds_text) if run.per_epoch else _span(i18n.number(low, 2), i18n.number(high, 2))
        ratio = _span(i18n.number(cpu / high, 1), i18n.number(cpu / low, 1))
        sentence = _(
            "At batch size {batch}, {machine} took {gpu} s per epoch ({run}); at the rate timed above this "
            "server's {cpu} would need at least {seconds} s: **{ratio}×** the GPU's time."
        )
        lines.append(
            sentence.format(
                batch=batch, machine=figures.machine, gpu=gpu, run=run.run, cpu=timing.label("cpu"),
                seconds=i18n.number(cpu, 1), ratio=ratio,
            )
        )  # fmt: skip
    return lines


def _span(low: str, high: str) -> str:
    """One number, or a range when its ends differ as shown."""
    return low if low == high else f"{low}-{high}"


def _ago(seconds: float) -> str:
    if seconds < 10:
        return _("just now")
    if seconds >= 90:
        return _("{minutes} min ago").format(minutes=f"{seconds / 60:.0f}")
    return _("{seconds} s ago").format(seconds=f"{seconds:.0f}")


def findings(rows: list[timing.Timing]) -> list[str]:
    """What the measurement says, in sentences built from its numbers."""
    by = {(r.model, r.device, r.batch_size): r for r in rows}
    small, large = min(BATCH_SIZES), max(BATCH_SIZES)
    lines = []
    for device in dict.fromkeys(r.device for r in rows):
        net_s, net_l = by.get(("Net", device, small)), by.get(("Net", device, large))
        if net_s and net_l:
            gain = net_l.images_per_second / net_s.images_per_second
            sentence = _(
                "On **{device}**, Net handles {gain}× more images per second at batch size {large} than at {small}: "
                "a bigger batch spreads the fixed cost of each step over more images."
            )
            lines.append(sentence.format(device=timing.label(device), gain=i18n.number(gain, 1), large=large, small=small))
        wide_l = by.get(("WideNet", device, large))
        if net_l and wide_l:
            sentence = _(
                "On **{device}** at batch size {large}, WideNet ({wide} parameters) takes {ratio}× as long per step "
                "as Net ({net})."
            )
            wide, net = i18n.number(wide_l.parameters, 0), i18n.number(net_l.parameters, 0)
            ratio = i18n.number(wide_l.seconds / net_l.seconds, 1)
            lines.append(sentence.format(device=timing.label(device), large=large, wide=wide, ratio=ratio, net=net))
    for device in (d for d in dict.fromkeys(r.device for r in rows) if d != "cpu"):
        for model, batch in (("Net", small), ("Net", large), ("WideNet", large)):
            gain = timing.speedup(rows, model, batch, device)
            if gain is not None:
                sentence = _("{model} at batch size {batch}: **{device}** is {gain}× as fast as the {cpu}.")
                cpu = timing.label("cpu")
                lines.append(sentence.format(model=model, batch=batch, device=device, gain=i18n.number(gain, 1), cpu=cpu))
    disturbed = [
        (r.device, r.batch_size)
        for r in rows
        if r.model == "WideNet" and (net := by.get(("Net", r.device, r.batch_size))) and r.seconds < net.seconds
    ]
    if disturbed:
        device, batch = disturbed[0]
        sentence = _(
            "⚠️ On {device} at batch size {batch}, WideNet came out faster than Net although it does more "
            "arithmetic per image: other work on this machine disturbed the measurement. Press **Measure again**."
        )
        lines.append(sentence.format(device=timing.label(device), batch=batch))
    if all(r.device == "cpu" for r in rows):
        lines.append(
            _(
                "This machine has no GPU, so only the CPU is timed. Served from a machine with a CUDA or Apple GPU, "
                "the chart gains a dashed line per GPU, and these notes compare each GPU with the CPU. Below, figures "
                "measured on a GPU elsewhere stand beside this CPU's."
            )
        )
    return lines


def widen() -> None:
    """The tutorial's exercise: choose conv1/conv2 widths, see the parameters and time one step."""
    c1, c2, c3, c4 = st.columns(4)
    width1 = c1.select_slider(_("conv1 channels"), [6, 16, 32, 64], 32, key="widen_c1")
    width2 = c2.select_slider(_("conv2 channels"), [16, 32, 64, 128], 64, key="widen_c2")
    batch = c3.select_slider(_("batch size"), [4, 32, 128], 32, key="widen_batch")
    device = c4.selectbox(_("device"), timing.devices(), key="widen_device", format_func=timing.label)
    model = WideNet(width1, width2)
    wide, net = i18n.number(parameter_count(model), 0), i18n.number(parameter_count(WideNet(6, 16)), 0)
    st.caption(_("WideNet({width1}, {width2}) has {wide} parameters (Net has {net}).").format(
        width1=width1, width2=width2, wide=wide, net=net))  # fmt: skip
    history = st.session_state.setdefault("widen_history", [])
    if st.button(_("Time one step"), type="primary", key="widen_time"):
        seconds = timing.time_step(model, batch, device, budget=0.3)
        history.insert(
            0,
            {
                "conv1": width1,
                "conv2": width2,
                _("parameters"): parameter_count(model),
                _("device"): timing.label(device),
                _("batch size"): batch,
                _("ms per step"): round(1000 * seconds, 2),
                _("images / s"): round(batch / seconds),
            },
        )
    if history:
        st.dataframe(history, hide_index=True)
    else:
        st.caption(_("Press the button to time it; each measurement is added to a table here so you can compare widths."))


def to_the_lab() -> None:
    """The tutorial preset, and a button that opens the lab with it filled in."""
    preset = PRESETS["tutorial"].to_dict()
    shown = ("model", "epochs", "batch_size", "lr", "momentum", "optimizer", "mean", "std", "log_interval")
    st.markdown(_("**The tutorial preset**, as the lab will fill it in:"))
    st.dataframe([{_("setting"): k, _("value"): str(preset[k])} for k in shown], hide_index=True)
    if st.button(_("Train it in the lab"), type="primary", icon=":material/science:", key="to_lab"):
        st.session_state["lab_preset"] = "tutorial"  # the lab page reads this key and fills in the preset
        try:
            st.switch_page("pages/lab.py")
        except StreamlitAPIException:  # the page was run on its own, outside app.py's router
            st.info(_("The tutorial preset is set: open **Train the CNN** in the Lab section of the sidebar."))
