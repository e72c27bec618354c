"""The "Edit and run" box under a lesson's code block: the student changes the snippet and runs it.

The snippet goes to classroom.sandbox: refused unless it is on the whitelist, then run in a separate process with
CPU-time, memory and output limits. Nothing a student types is run in the server. One run at a time per browser;
the server waits at most the sandbox's timeout (plus a grace second or two) for it."""

from __future__ import annotations

import threading

import streamlit as st

from classroom import sandbox
from ui import i18n, state
from ui.i18n import _
from ui.plain import md

_running: set[str] = set()  # browsers with a run going (a second tab of the same browser waits its turn)
_running_lock = threading.Lock()


def box(source: str, key: str) -> None:
    """An expander with the block's code in a text area and a Run button; nothing for a block off the whitelist."""
    code = sandbox.editable(source)
    if code is None:
        return
    sandbox.prestart()  # the zygote imports torch now, not when the first student presses Run
    with st.expander(_("Edit and run"), icon=":material/edit:"):
        with st.form(key=f"{key}-form", border=False):
            text = st.text_area(
                _("Your code"),
                value=code,
                key=f"{key}-code",
                height=min(420, 46 + 24 * code.count("\n")),
                max_chars=sandbox.MAX_SOURCE,
                label_visibility="collapsed",
            )
            clicked = st.form_submit_button(_("Run"), key=f"{key}-run", icon=":material/play_arrow:")
        limits = _(
            "`torch` and `np` are already there. Runs in a separate process, limited to {seconds} s of computing, "
            "{megabytes} MB and {characters} characters of output; only listed torch and numpy functions, tensor "
            "methods and a few builtins (no imports, def, lambda, try)."
        )
        characters = i18n.number(sandbox.OUTPUT_CHARS, 0)
        st.caption(limits.format(seconds=i18n.short(sandbox.TIMEOUT), megabytes=sandbox.MEMORY_MB, characters=characters))
        if clicked:
            st.session_state[f"{key}-result"] = _run(text)
        shown = st.session_state.get(f"{key}-result")
        if shown is not None:
            _show(*shown)


def _run(text: str) -> tuple[str, object]:
    """("refused", reason), ("busy", message) or ("ran", sandbox.Result)."""
    me = state.owner()
    with _running_lock:
        if me in _running:
            return "busy", _("Your previous run is still going: wait for it, then press Run again.")
        _running.add(me)
    try:
        with st.spinner(_("Running…")):
            return "ran", sandbox.run(text)
    except sandbox.Refused as e:
        return "refused", str(e)
    finally:
        with _running_lock:
            _running.discard(me)


def _show(kind: str, payload) -> None:
    if kind == "refused":
        st.error(_("Not run, {reason}").format(reason=md(payload)), icon=":material/block:")
    elif kind == "busy":
        st.warning(payload)
    else:
        result: sandbox.Result = payload
        if result.stdout:
            st.code(result.stdout.rstrip("\n"), language=None)
        if result.error:
            st.error(md(result.error))
        if result.killed_reason:
            st.error(md(result.killed_reason), icon=":material/timer_off:")
        if not (result.stdout or result.error or result.killed_reason):
            st.caption(_("It ran and printed nothing."))
