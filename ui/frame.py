"""The sidebar every page shares: device, data set, this session's run."""

import streamlit as st
import torch

from classroom import data
from ui import state


def device_label() -> str:
    """CPU, or the GPU's name."""
    if torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name(0)}"
    return "CPU"


def sidebar() -> None:
    with st.sidebar:
        st.caption(f"Device: **{device_label()}**")
        sets = data.loaded()
        st.caption("Data: " + (", ".join(f"**{d.label}**" for d in sets) if sets else "none loaded yet"))
        run = state.manager().active_run(state.session_id())
        if run:
            st.caption(f"Your run: **{run.status}** ({100 * run.progress:.0f} %)")
            st.page_link("pages/lab.py", label="Open it in the lab", icon=":material/science:")
