"""Every run on this server, live or from disk: open one, or overlay several to compare them."""

import streamlit as st

from ui import frame, instructor, results, run_list, state
from ui.i18n import _, ngettext

frame.ensure_router()

st.title(_("All runs"))
snaps = state.manager().list()
if not snaps:
    st.info(_("No runs yet on this server. Start one in the lab."))
    st.page_link("pages/lab.py", label=_("Go to the lab"), icon=":material/science:")
    st.stop()

active = sum(s.active for s in snaps)
summary = ngettext(
    "{count} run, {active} going now. Runs from before a server restart are read back from disk.",
    "{count} runs, {active} going now. Runs from before a server restart are read back from disk.",
    len(snaps),
)
st.caption(summary.format(count=len(snaps), active=active))
run_list.table(snaps)

tab_open, tab_compare = st.tabs([_("Open a run"), _("Compare runs")])
with tab_open:
    if run_id := run_list.pick(snaps):
        instructor.feature_control(run_id)  # the instructor's button: show this run on every lab page
        results.show(run_id, key="runs")
with tab_compare:
    run_list.overlay(snaps)
