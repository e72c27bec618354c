"""The lab: pick a preset, turn the knobs, start a run and watch it train live."""

import streamlit as st

from classroom import script
from classroom.config import ConfigError
from classroom.runs import RunRefused
from ui import frame, lab_form, plain, results, state
from ui.i18n import _

frame.ensure_router()

st.title(_("Train the CNN"))
st.caption(_("The CIFAR-10 tutorial's network, trained live in the background: switch pages, the run keeps going."))
mgr, owner, data_dir = state.manager(), state.owner(), state.data_dir()

if mgr.featured and mgr.featured != st.session_state.get("lab_run"):
    with st.container(border=True):
        st.subheader(":material/campaign: " + _("Featured run, shown to the whole class"))
        results.show(mgr.featured, key="featured")

mine = mgr.active_run(owner)
if mine and st.session_state.get("lab_run") != mine.id:
    st.session_state["lab_run"] = mine.id  # this browser's run, started before a reload or in another tab
elif "lab_run" not in st.session_state and (last := mgr.latest(owner)):
    st.session_state["lab_run"] = last.id  # a reload after the run ended still shows it

config, problems = lab_form.form(data_dir)
lab_form.data_panel(st.session_state.get("lab.source", ""), data_dir)
for problem in problems:
    st.error(plain.md(problem), icon=":material/block:")  # they quote the folder path as typed

start, code = st.columns([1, 3])
if start.button(_("Start training"), type="primary", icon=":material/play_arrow:", disabled=config is None or mine is not None):
    try:
        st.session_state["lab_run"] = mgr.submit(config, owner=owner)
        st.rerun()
    except (ConfigError, RunRefused) as e:
        st.error(plain.md(e))
if mine is not None:
    start.caption(_("Your run is going: stop it or let it finish to start another."))
if config is not None:
    with code.expander(_("Show the code: this run as a standalone PyTorch script")):
        source = script.script(config)
        name = script.filename(config)
        st.download_button(_("Download the script"), source, file_name=name, mime="text/x-python", on_click="ignore")
        st.code(source, language="python", line_numbers=True)

if run_id := st.session_state.get("lab_run"):
    st.divider()
    st.header(_("Your run"))
    results.show(run_id, key="lab")

st.divider()
with st.expander(_("Evaluate a saved checkpoint")):
    results.uploaded_checkpoint(data_dir)
