"""Lesson 7's page: the tutorial's code run once per server process in the background, drawn block by block as it goes.

The runs are process-wide (not st.cache_*, which any client's clear_cache message empties): the first visitor starts one,
everyone sees it, and a page open while it goes polls it once a second."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import streamlit as st
import torch

from classroom import lessons as lesson_files
from classroom import tutorial
from classroom.lessons import Code, Prose, Question, Widget
from ui import i18n, lessons, notebooks, state
from ui.i18n import _

POLL_SECONDS = 1.0
KEEP = 2  # runs a process keeps: the one for its current data, and the one before (a page may still show it)
RETRY_SECONDS = 60  # a run that raised is started again by a visit this long after it ended (a full disk, freed)


def _find() -> tutorial.Source:
    return tutorial.find(state.data_dir(), state.data_roots())


# Which data the page uses, looked up once a minute (it checks CIFAR-10's md5s): a download in the lab is picked up.
source = state.ProcessWide(_find, ttl=60)


class Runs:
    """The tutorial's runs in this process, one per (data source, lesson text), each started by the first visit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[tuple[tutorial.Source, str], tutorial.Run] = {}

    def get(self, found: tutorial.Source, text: str) -> tutorial.Run:
        """The run of this lesson text (one per language: the Czech one's code comments differ) on this data, started by
        the first visit, which names the language its set-up's comments are written in."""
        with self._lock:
            key = (found, text)
            run = self._runs.get(key)
            if run is not None and run.done and run.failed and time.time() - run.ended > RETRY_SECONDS:
                run = None
            if run is None:
                self._runs.pop(key, None)
                self._runs[key] = run = tutorial.Run(found, text, language=i18n.language()).start()
                while len(self._runs) > KEEP:
                    del self._runs[next(iter(self._runs))]  # the oldest; a page still polling it keeps its own reference
            return run

    def wait(self, timeout: float) -> bool:
        """Whether every run started so far has ended, waiting up to timeout seconds for each (tests only)."""
        with self._lock:
            going = list(self._runs.values())
        return all(run.wait(timeout) for run in going)

    def clear(self) -> None:
        """Forget every run (tests only: a run still going finishes unseen)."""
        with self._lock:
            self._runs.clear()


runs = Runs()


def render(widgets: dict[str, Callable[[], None]] | None = None) -> lesson_files.Lesson:
    """Draw lessons/07_classifier.md (lessons/cs/... on a Czech page) with the outputs of this process's run of it;
    widgets and questions after the code."""
    language = i18n.language()
    text = lesson_files.path(tutorial.SLUG, language).read_text(encoding="utf-8")
    lesson = lesson_files.parse(text, tutorial.SLUG)
    st.title(lesson.title)
    caption = _("Lesson {number} of {total} · the code on this page runs on this server, once for everyone who opens it")
    st.caption(caption.format(number=int(tutorial.SLUG[:2]), total=len(lesson_files.lesson_files())))
    notebooks.lesson_button(tutorial.SLUG, text)
    found = source()
    run = runs.get(found, text)
    if found.synthetic:
        st.warning(tutorial.describe(found, language), icon=":material/info:")
    else:
        st.info(tutorial.describe(found, language), icon=":material/dataset:")
    if run.done:
        _page(lesson, run)
    else:
        _live(lesson, run)
    widgets = widgets or {}
    number = 0
    for segment in lesson.segments:
        if isinstance(segment, Widget):
            if segment.name in widgets:
                with st.container(border=True):
                    widgets[segment.name]()
            else:
                lessons.missing(segment.name)
        elif isinstance(segment, Question):
            number += 1
            lessons.question(segment, key=f"{tutorial.SLUG}-q{number}", number=number, slug=tutorial.SLUG)
    return lesson


@st.fragment(run_every=POLL_SECONDS)
def _live(lesson: lesson_files.Lesson, run: tutorial.Run) -> None:
    _page(lesson, run)
    if run.done:
        st.rerun(scope="app")  # drawn once more without the poller


def _page(lesson: lesson_files.Lesson, run: tutorial.Run) -> None:
    """The run's summary line, then the lesson's prose and code, each block with what it showed (or its progress)."""
    _summary(run)
    if run.setup_error:
        st.error(_("The data could not be prepared, so nothing ran: {error}").format(error=run.setup_error))
    outputs = list(run.outputs)  # a copy: the run's thread appends to it
    running, printed = run.current
    number = 0
    for segment in lesson.segments:
        if isinstance(segment, Prose):
            st.markdown(segment.text)
        elif isinstance(segment, Code) and segment.runs:
            if number == 0:
                _setup(run)
            number += 1
            st.code(segment.source, language="python")
            if number <= len(outputs):
                _output(outputs[number - 1], segment.source)
            elif number == running and printed is not None and not run.done:
                if text := printed.getvalue():
                    st.code(text.rstrip("\n"), language=None)
                st.caption(":material/hourglass_top: " + _("Running now…"))
            elif not run.done:
                st.caption(_("Runs when the blocks above have finished."))
        elif isinstance(segment, Code):
            st.code(segment.source, language=segment.language if segment.language != "text" else None)
            if segment.note:
                st.caption(segment.note)


def _summary(run: tutorial.Run) -> None:
    started = time.strftime("%H:%M:%S", time.localtime(run.started))
    if not run.done:
        going = _(
            "Running on this server since {started} ({elapsed} so far): each block's output appears as it finishes. "
            "Everyone who opens this page now sees this same run."
        )
        st.caption(":material/directions_run: " + going.format(started=started, elapsed=seconds(time.time() - run.started)))
        return
    training = next((o for o, b in zip(run.outputs, run.lesson.code_blocks) if "loss.backward()" in b.source), None)
    if training:
        ran = _(
            "This code ran once on this server, at {started}, for everyone who opens this page: {total} in all, {training} "
            "of it training, measured. The seeds are fixed, so running it again would print the same numbers."
        )
    else:
        ran = _(
            "This code ran once on this server, at {started}, for everyone who opens this page: {total} in all, measured. "
            "The seeds are fixed, so running it again would print the same numbers."
        )
    total, trained = seconds(run.ended - run.started), seconds(training.seconds) if training else ""
    st.caption(":material/schedule: " + ran.format(started=started, total=total, training=trained))


def _setup(run: tutorial.Run) -> None:
    st.markdown(
        _(
            "**Set by this page** from the data it found on this server: the names the blocks below read. "
            "In your own Python, set them by hand (the lesson's notebook sets them from what its folder holds)."
        )
    )
    if run.preamble:
        st.code(run.preamble, language="python")
    elif not run.done:
        st.caption(":material/hourglass_top: " + _("Preparing the data…"))


def _output(output: lesson_files.Output, source: str) -> None:
    if output.stdout:
        st.code(output.stdout.rstrip("\n"), language=None)
    for png in output.images:
        st.image(png, alt=_("The first four images of the mini-batch, in the order of the classes printed above"))
    if output.error:
        st.error(_("This block raised an error:\n\n{error}").format(error=output.error))
    if output.seconds >= 0.1:
        st.caption(_("This block took {time}.").format(time=seconds(output.seconds)))
    if ".to(device)" in source and not torch.cuda.is_available():
        no_gpu = _(
            "This server has no CUDA GPU, so `device` is the CPU and this block ran there. On a server with one, the "
            "same code prints `cuda:0` and runs the test set through the network on the GPU."
        )
        st.caption(":material/memory: " + no_gpu)


def seconds(value: float) -> str:
    """12.3 s, or 1 min 05 s."""
    if value < 60:
        return f"{i18n.number(value, 1)} s"
    value = int(round(value))
    return f"{value // 60} min {value % 60:02d} s"
