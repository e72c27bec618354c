"""The sidebar every page shares: device, the Ray cluster (when runs train there), data set, this session's run."""

import contextlib
import threading

import streamlit as st
import torch

from classroom import data
from ui import i18n, lessons, plain, state
from ui.i18n import _, ngettext

STATUS_POLL_SECONDS = 2.0


def device_label() -> str:
    """CPU, or the GPU's name."""
    if torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name(0)}"
    return "CPU"


def ensure_router() -> None:
    """Draw the page through app.py's router when Streamlit ran this page file on its own.

    With a pages/ folder beside app.py, the first script run of a fresh server that lands on a page URL
    (a bookmark, a tab reconnecting after a restart) runs that file alone, Streamlit's old multipage mode:
    no st.navigation, no sidebar frame, no access gate. Running the router here, in the same script run,
    keeps the click that caused the run; app.run() runs this page again, inside routing().
    """
    if not getattr(_router, "active", False):
        import app

        app.run()
        st.stop()


@contextlib.contextmanager
def routing():
    """Mark this script thread as running a page through app.py's router (see ensure_router)."""
    _router.active = True
    try:
        yield
    finally:
        _router.active = False


_router = threading.local()  # one script thread per session run: the flag is this run's alone


def sidebar() -> None:
    with st.sidebar:
        i18n.switch()
        st.caption(_("Device: **{device}**").format(device=device_label()))
        _cluster()
        _checks()
        sets = data.loaded()
        shown = [f"**{plain.md(d.label)}**" for d in sets]
        loading = state.manager().loading() - {d.name for d in sets}
        # a run is decoding it right now
        shown += [_("{source} (loading…)").format(source=plain.md(source)) for source in sorted(loading)]
        st.caption(_("Data: {sets}").format(sets=", ".join(shown)) if shown else _("Data: none loaded yet"))
        run = state.manager().active_run(state.owner())
        if run:
            _run_status()
        elif run_id := st.session_state.get("lab_run"):
            snap = state.manager().get(run_id)
            if snap is not None:
                st.caption(_("Your last run: **{status}**").format(status=i18n.status_name(snap.status)))
                link = {"label": _("See it in All runs"), "icon": ":material/monitoring:", "query_params": {"run": run_id}}
                st.page_link("pages/runs.py", **link)


def _cluster() -> None:
    """The Ray cluster runs train on (CLASSROOM_EXECUTOR=ray): machines, CPUs, GPUs, runs going. The executor answers
    from its last look (a few seconds old at most, refreshed in the background), so no page waits for the cluster."""
    manager = state.manager()
    executor = getattr(manager, "executor", None)  # pages' tests stand in simpler managers
    if not getattr(executor, "remote", False):
        return
    view = executor.cluster()
    if view is None:
        st.caption(_("Cluster: connecting to Ray…"))
    elif view.error:
        st.caption(_(":material/cloud_off: Cluster: unavailable, runs are refused ({error})").format(error=plain.md(view.error)))
    else:
        going, waiting = manager.going()
        machines = ngettext("{n} machine", "{n} machines", view.nodes).format(n=view.nodes)
        runs = ngettext("{n} run going", "{n} runs going", going).format(n=going)
        st.caption(
            _(":material/lan: Cluster: **{machines}**, {cpus} CPUs, {gpus} GPUs · {runs}, {waiting} waiting").format(
                machines=machines, cpus=f"{view.cpus:g}", gpus=f"{view.gpus:g}", runs=runs, waiting=waiting
            )
        )


def _checks() -> None:
    """How many check questions this browser got right, in each lesson it has answered some."""
    me, parts = state.owner(), []
    for number, (slug, total) in enumerate(lessons.question_counts().items(), 1):
        right, answered = state.answers.score(me, f"{slug}-q")
        if answered:
            parts.append(_("lesson {number}: {right} of {total}").format(number=number, right=right, total=total))
    if parts:
        st.caption(_(":material/task_alt: Questions right: {lessons}").format(lessons=", ".join(parts)))


@st.fragment(run_every=STATUS_POLL_SECONDS)
def _run_status() -> None:
    """This session's active run, refreshed while it goes; it stops polling once the run has ended."""
    run = state.manager().active_run(state.owner())
    if run is None:
        st.rerun(scope="app")
    device = run.device or "?"
    if run.status == "queued":
        st.caption(_("Your run: **queued** on {device}, position {position}").format(device=device, position=run.queue_position))
    else:
        status, done = i18n.status_name(run.status), i18n.percent(run.progress, 0)
        st.caption(_("Your run: **{status}** on {device} ({done})").format(status=status, device=device, done=done))
    st.page_link("pages/lab.py", label=_("Open it in the lab"), icon=":material/science:")
