"""Process-wide objects every session shares, and this session's identity."""

import os
import secrets

import streamlit as st

from classroom.runs import RunManager


@st.cache_resource
def manager() -> RunManager:
    """The one RunManager of this server process (DESIGN.md: runs outlive pages and tabs)."""
    return RunManager(
        runs_dir=os.environ.get("CLASSROOM_RUNS_DIR", "runs"),
        max_per_device=_env_int("CLASSROOM_MAX_RUNS_PER_DEVICE", 1),
        max_queue=_env_int("CLASSROOM_MAX_QUEUE", 16),
    )


def data_dir() -> str:
    """Where CIFAR-10 and decoded image folders are kept."""
    return os.environ.get("CLASSROOM_DATA_DIR", "data")


def session_id() -> str:
    """A random id for this browser session, used to allow one active run per session."""
    if "session_id" not in st.session_state:
        st.session_state.session_id = secrets.token_hex(8)
    return st.session_state.session_id


def _env_int(name: str, default: int) -> int:
    try:
        return max(1, int(os.environ.get(name, default)))
    except ValueError:
        return default
