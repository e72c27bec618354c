"""The CIFAR-10 download, run in a background thread so a click never blocks the page or other sessions."""

from __future__ import annotations

import threading

import streamlit as st

from classroom import data
from ui import plain, state
from ui.i18n import _


class Download:
    """One download at a time per server process; pages poll its progress."""

    def __init__(self):
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.done = self.total = 0  # bytes
        self.error: str | None = None

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def start(self, data_dir: str, fetch=None) -> None:
        """Begin downloading into data_dir unless a download is already going."""
        with self.lock:
            if self.running:
                return
            self.done = self.total = 0
            self.error = None
            fetch = fetch or data.download_cifar10  # looked up at call time, so tests can stand in for the network
            self.thread = threading.Thread(target=self._work, args=(data_dir, fetch), name="cifar10-download", daemon=True)
            self.thread.start()

    def _work(self, data_dir: str, fetch) -> None:
        try:
            fetch(data_dir, progress=self._progress)
        except data.DataError as e:
            self.error = str(e)
        except Exception as e:  # any other failure still ends with a message, never a dead thread
            self.error = f"{type(e).__name__}: {e}"

    def _progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total


cifar10_download = state.ProcessWide(Download)  # the process-wide CIFAR-10 download, out of clear_cache's reach


def panel(data_dir: str) -> None:
    """Explain that CIFAR-10 is missing; a Download button with a live progress bar; the failure, clearly."""
    job = cifar10_download()
    missing = _(
        "CIFAR-10 is not on this server yet (looked in `{folder}`). Download it once (about 170 MB from "
        "www.cs.toronto.edu) for everyone on this server, or train on **shapes** (synthetic, built in) or your own "
        "**image folder** meanwhile. From a terminal: `python -m classroom download`."
    )
    st.info(missing.format(folder=data_dir))
    if job.running:
        _progress()
        return
    if job.error:
        failed = _("The download failed: {reason}. You can train on shapes or an image folder instead.")
        st.error(failed.format(reason=plain.md(job.error)))
    if st.button(_("Download CIFAR-10"), icon=":material/download:", key="lab.download"):
        job.start(data_dir, fetch=data.download_cifar10)
        _progress()


@st.fragment(run_every=1.0)
def _progress() -> None:
    job = cifar10_download()
    if job.total:
        text = _("Downloading CIFAR-10: {done} of {total} MB").format(
            done=f"{job.done / 1e6:.0f}", total=f"{job.total / 1e6:.0f}"
        )
        st.progress(min(job.done / job.total, 1.0), text=text)
    else:
        st.progress(0.0, text=_("Downloading CIFAR-10: {done} MB so far").format(done=f"{job.done / 1e6:.0f}"))
    if not job.running:
        st.rerun(scope="app")  # finished or failed: redraw the lab without the poller
