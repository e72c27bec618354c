"""The lesson renderer: prose as markdown, each python block with what it printed, widgets in place, check questions."""

from __future__ import annotations

import functools
from collections.abc import Callable

import plotly.io as pio
import streamlit as st
from streamlit.errors import StreamlitAPIException

from classroom import lessons
from classroom.lessons import Code, Prose, Question, Widget
from ui import charts, edit_run, i18n, notebooks, state
from ui.i18n import _, ngettext


@st.cache_data(show_spinner=False)  # the spinner is drawn by the caller, in the page's language
def _cached_outputs(slug: str, text: str) -> list[lessons.Output]:
    return lessons.run(lessons.parse(text, slug))


def _outputs(slug: str, text: str) -> list[lessons.Output]:
    """The blocks' outputs, computed once per lesson text (the text is the cache key, so an edit reruns them)."""
    with st.spinner(_("Running the lesson's code…")):  # shown only when it takes a moment: a first visit
        return _cached_outputs(slug, text)


@functools.lru_cache(maxsize=1)
def question_counts() -> dict[str, int]:
    """{lesson slug: number of check questions}, read once per process (the same in every language)."""
    return {path.stem: len(lessons.load(path.stem).questions) for path in lessons.lesson_files()}


def render(slug: str, widgets: dict[str, Callable[[], None]] | None = None, editable: bool = False) -> lessons.Lesson:
    """Draw lessons/<slug>.md (lessons/cs/<slug>.md on a Czech page) top to bottom; `::: widget name` lines call
    widgets[name]().

    editable: each python block on classroom.sandbox's whitelist gets an "Edit and run" box (ui.edit_run)."""
    text = lessons.path(slug, i18n.language()).read_text(encoding="utf-8")
    lesson = lessons.parse(text, slug)
    number = int(slug[:2])
    st.title(lesson.title)
    caption = _("Lesson {number} of {total} · every code block on this page ran when the page was opened")
    st.caption(caption.format(number=number, total=len(lessons.lesson_files())))
    notebooks.lesson_button(slug, text)
    if lesson.questions:
        # Past every code block, chart and table a keyboard user would tab through dozens of stops to reach the
        # questions; this link moves the focus to the first one (the next Tab lands on its answers).
        count = len(lesson.questions)
        skip = ngettext("Skip to the check question ({count})", "Skip to the check questions ({count})", count)
        st.markdown(f"[{skip.format(count=count)}](#check-yourself-1)")
    outputs = iter(_outputs(slug, text))
    widgets = widgets or {}
    questions = blocks = 0
    for segment in lesson.segments:
        if isinstance(segment, Prose):
            st.markdown(segment.text)
        elif isinstance(segment, Code):
            st.code(segment.source, language=segment.language if segment.language != "text" else None)
            if segment.runs:
                _show_output(next(outputs))
                blocks += 1
                if editable:
                    edit_run.box(segment.source, key=f"{slug}-edit{blocks}")
            elif segment.note:
                st.caption(segment.note)
        elif isinstance(segment, Widget):
            if segment.name not in widgets:
                missing(segment.name)
            else:
                with st.container(border=True):
                    widgets[segment.name]()
        elif isinstance(segment, Question):
            questions += 1
            question(segment, key=f"{slug}-q{questions}", number=questions, slug=slug)
    return lesson


def missing(name: str) -> None:
    """The lesson file names a widget the page lacks: say so in place of it."""
    st.warning(_("This lesson asks for a widget named {name} that the page does not provide.").format(name=repr(name)))


def next_lesson(page: str, title: str) -> None:
    """A link to the next page at the bottom of a lesson; title in English (app.LESSONS), shown in the page's language."""
    st.divider()
    label = _("Next: {title}").format(title=_(title))
    try:
        st.page_link(page, label=label, icon=":material/arrow_forward:")
    except StreamlitAPIException:  # the page was run on its own (AppTest, `streamlit run pages/...`): no router to link through
        st.caption(label)


def _show_output(output: lessons.Output) -> None:
    if output.stdout:
        st.code(output.stdout.rstrip("\n"), language=None)
    for figure in output.figures:
        st.plotly_chart(pio.from_json(figure), config=charts.CONFIG)
    if output.error:
        st.error(_("This block raised an error:\n\n{error}").format(error=output.error))


@functools.lru_cache(maxsize=64)
def _option_texts(slug: str, language: str) -> tuple[tuple[str, ...], ...]:
    """Each question's option texts in one language's lesson file (empty when there is none)."""
    try:
        return tuple(tuple(o.text for o in q.options) for q in lessons.load(slug, language).questions)
    except OSError:
        return ()


def _in_this_language(given: str | None, labels: list[str], slug: str | None, number: int) -> str | None:
    """An answer given on the lesson in another language, as the same option's text here (answers keep their text)."""
    if given is None or given in labels or slug is None:
        return given
    for language in i18n.LANGUAGES:
        texts = _option_texts(slug, language)
        if number <= len(texts) and given in texts[number - 1] and texts[number - 1].index(given) < len(labels):
            return labels[texts[number - 1].index(given)]
    return given


def question(q: Question, key: str, number: int, slug: str | None = None) -> None:
    """A check-yourself question: pick an option, press Check, read why it is right or wrong.

    Graded only on Check (a radio graded on change would reveal the answer to arrow keys cycling through it), and
    kept for this browser, so a page switch, a reload or a switch of language shows the answer given."""
    labels = [o.text for o in q.options]
    given = _in_this_language(state.answers.get(state.owner(), key), labels, slug, number)
    with st.container(border=True):
        st.subheader(_("Check yourself {number}").format(number=number), anchor=f"check-yourself-{number}")
        st.markdown(q.prompt)
        with st.form(key=f"{key}-form", border=False):
            index = labels.index(given) if given in labels else None
            choice = st.radio(_("Your answer"), labels, index=index, key=key, label_visibility="collapsed")
            checked = st.form_submit_button(_("Check"), icon=":material/task_alt:")
        if checked and choice is not None:
            given = choice
            state.answers.put(state.owner(), key, choice, q.options[labels.index(choice)].correct)
        elif checked:
            st.caption(_("Pick an answer first."))
        if given in labels:
            option = q.options[labels.index(given)]
            if option.correct:
                st.success(_("Right: {why}").format(why=option.why), icon=":material/check_circle:")
            else:
                # A colon, as after "Right": a reason may start with a lower-case name (backward, zero_grad).
                st.error(_("Not quite: {why}").format(why=option.why), icon=":material/cancel:")
            with st.expander(_("Why each answer is right or wrong")):
                right, wrong = _("Right"), _("Wrong")
                for o in q.options:
                    # The icon is hidden from screen readers (aria-hidden), so the word says it too.
                    mark = f":green[:material/check_circle: {right}]" if o.correct else f":red[:material/cancel: {wrong}]"
                    st.markdown(f"{mark} **{o.text}** — {o.why}")
