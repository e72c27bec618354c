"""The lesson renderer: prose as markdown, each python block with what it printed, widgets in place, check questions."""

from __future__ import annotations

import functools
from collections.abc import Callable

import plotly.io as pio
import streamlit as st
from streamlit.errors import StreamlitAPIException

from classroom import lessons
from classroom.lessons import Code, Prose, Question, Widget
from ui import charts, edit_run, notebooks, state


@st.cache_data(show_spinner="Running the lesson's code…")
def _outputs(slug: str, text: str) -> list[lessons.Output]:
    """The blocks' outputs, computed once per lesson text (the text is the cache key, so an edit reruns them)."""
    return lessons.run(lessons.parse(text, slug))


@functools.lru_cache(maxsize=1)
def question_counts() -> dict[str, int]:
    """{lesson slug: number of check questions}, read once per process."""
    return {path.stem: len(lessons.load(path.stem).questions) for path in lessons.lesson_files()}


def render(slug: str, widgets: dict[str, Callable[[], None]] | None = None, editable: bool = False) -> lessons.Lesson:
    """Draw lessons/<slug>.md top to bottom; `::: widget name` lines call widgets[name]().

    editable: each python block on classroom.sandbox's whitelist gets an "Edit and run" box (ui.edit_run)."""
    text = (lessons.LESSONS_DIR / f"{slug}.md").read_text(encoding="utf-8")
    lesson = lessons.parse(text, slug)
    number = int(slug[:2])
    st.title(lesson.title)
    st.caption(f"Lesson {number} of {len(lessons.lesson_files())} · every code block on this page ran when the page was opened")
    notebooks.lesson_button(slug, text)
    if lesson.questions:
        # Past every code block, chart and table a keyboard user would tab through dozens of stops to reach the
        # questions; this link moves the focus to the first one (the next Tab lands on its answers).
        count = len(lesson.questions)
        st.markdown(f"[Skip to the check question{'s' if count > 1 else ''} ({count})](#check-yourself-1)")
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
                st.warning(f"This lesson asks for a widget named {segment.name!r} that the page does not provide.")
            else:
                with st.container(border=True):
                    widgets[segment.name]()
        elif isinstance(segment, Question):
            questions += 1
            question(segment, key=f"{slug}-q{questions}", number=questions)
    return lesson


def next_lesson(page: str, title: str) -> None:
    """A link to the next page at the bottom of a lesson."""
    st.divider()
    try:
        st.page_link(page, label=f"Next: {title}", icon=":material/arrow_forward:")
    except StreamlitAPIException:  # the page was run on its own (AppTest, `streamlit run pages/...`): no router to link through
        st.caption(f"Next: {title}")


def _show_output(output: lessons.Output) -> None:
    if output.stdout:
        st.code(output.stdout.rstrip("\n"), language=None)
    for figure in output.figures:
        st.plotly_chart(pio.from_json(figure), config=charts.CONFIG)
    if output.error:
        st.error("This block raised an error:\n\n" + output.error)


def question(q: Question, key: str, number: int) -> None:
    """A check-yourself question: pick an option, press Check, read why it is right or wrong.

    Graded only on Check (a radio graded on change would reveal the answer to arrow keys cycling through it), and
    kept for this browser, so a page switch or a reload shows the answer given."""
    given = state.answers.get(state.owner(), key)
    labels = [o.text for o in q.options]
    with st.container(border=True):
        st.subheader(f"Check yourself {number}", anchor=f"check-yourself-{number}")
        st.markdown(q.prompt)
        with st.form(key=f"{key}-form", border=False):
            index = labels.index(given) if given in labels else None
            choice = st.radio("Your answer", labels, index=index, key=key, label_visibility="collapsed")
            checked = st.form_submit_button("Check", icon=":material/task_alt:")
        if checked and choice is not None:
            given = choice
            state.answers.put(state.owner(), key, choice, q.options[labels.index(choice)].correct)
        elif checked:
            st.caption("Pick an answer first.")
        if given in labels:
            option = q.options[labels.index(given)]
            if option.correct:
                st.success(f"Right: {option.why}", icon=":material/check_circle:")
            else:
                # A colon, as after "Right": a reason may start with a lower-case name (backward, zero_grad).
                st.error(f"Not quite: {option.why}", icon=":material/cancel:")
            with st.expander("Why each answer is right or wrong"):
                for o in q.options:
                    # The icon is hidden from screen readers (aria-hidden), so the word says it too.
                    mark = ":green[:material/check_circle: Right]" if o.correct else ":red[:material/cancel: Wrong]"
                    st.markdown(f"{mark} **{o.text}** — {o.why}")
