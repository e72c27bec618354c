"""The "Download as a notebook" buttons of a lesson page and of a run (classroom.notebooks builds the .ipynb)."""

from __future__ import annotations

import streamlit as st

from classroom import notebooks
from ui import i18n, plain
from ui.i18n import N_, _

LABEL = N_("Download as a notebook (.ipynb)")


@st.cache_data(show_spinner=False, max_entries=32)
def _lesson(slug: str, text: str, language: str) -> bytes:
    """The lesson's notebook, built once per lesson text (the text is the cache key, so an edit rebuilds it)."""
    return notebooks.to_bytes(notebooks.lesson_notebook(slug, text, language))


def lesson_button(slug: str, text: str) -> None:
    """The lesson as NN_slug.ipynb: its text, code, and questions with answers, runnable without the app; in the
    page's language (text is that language's lesson file)."""
    language = i18n.language()
    st.download_button(
        _(LABEL), _lesson(slug, text, language), file_name=f"{slug}.ipynb", mime=notebooks.MIME,
        icon=":material/download:", key=f"{slug}-notebook", on_click="ignore",
        help=_("The lesson's text, its code as cells and its questions, to run in Jupyter with torch and torchvision."),
    )  # fmt: skip


@st.cache_data(show_spinner=False, max_entries=64)
def _run(fingerprint: str, _snap) -> bytes:
    """The run's notebook, built once per fingerprint (a fraction of a second: not on every rerun of the page)."""
    return notebooks.to_bytes(notebooks.run_notebook(_snap.config, run_id=_snap.id, results=_snap))


def run_button(snap, key: str) -> None:
    """A run as <run id>.ipynb: its training as notebook cells, and what the app measured for it."""
    ended = (snap.id, snap.status, snap.ended, snap.test_accuracy, len(snap.epochs))  # a run id never changes config
    try:
        data = _run(repr(ended), snap)
    except (NotImplementedError, notebooks.NotebookError) as e:  # a configuration the script cannot write out
        st.caption(_("No notebook for this run: {reason}").format(reason=plain.md(e)))
        return
    st.download_button(
        _(LABEL), data, file_name=f"{snap.id}.ipynb", mime=notebooks.MIME, icon=":material/download:",
        key=f"{key}-notebook", on_click="ignore",
        help=_("This run's training, step by step, with its settings and results, to run in Jupyter."),
    )  # fmt: skip
