"""The instructor's controls: feature a run so every session sees it on the lab page."""

import streamlit as st

from classroom.runs import Snapshot
from ui import access, state
from ui.i18n import _


def feature_control(run_id: str) -> None:
    """A button that features this run for the whole class (or stops featuring it); nothing for students."""
    if not access.is_instructor():
        return
    manager = state.manager()
    if manager.featured == run_id:
        st.button(
            _("Stop featuring"), key=f"unfeature-{run_id}", icon=":material/cancel_presentation:",
            on_click=manager.feature, args=(None,), help=_("Take this run off every student's lab page."),
        )  # fmt: skip
    else:
        st.button(
            _("Feature for the class"), key=f"feature-{run_id}", icon=":material/present_to_all:",
            on_click=manager.feature, args=(run_id,), help=_("Show this run on every student's lab page."),
        )  # fmt: skip


def featured() -> Snapshot | None:
    """The run the instructor featured, if any."""
    manager = state.manager()
    return manager.get(manager.featured) if manager.featured else None
