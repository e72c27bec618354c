"""Check questions: graded only on Check, kept for the browser across page switches and reloads, counted in the sidebar."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from classroom import lessons
from ui import access, state

APP = str(Path(__file__).resolve().parent.parent / "app.py")
LESSON = lessons.load("03_autograd")


@pytest.fixture(autouse=True)
def fresh(monkeypatch, tmp_path):
    monkeypatch.delenv("CLASSROOM_TOKEN", raising=False)
    monkeypatch.setenv("CLASSROOM_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setattr(state, "answers", state.Answers())
    state.manager.clear()
    yield
    state.manager.clear()


def autograd(browser: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state[access.BROWSER] = browser  # the browser's id (the cookie, in a real server)
    at.switch_page("pages/lesson_3_autograd.py").run()
    assert not at.exception
    return at


def feedback(at: AppTest) -> list[str]:
    return [m.value for m in at.success if m.value.startswith("Right")] + [e.value for e in at.error]


def sidebar(at: AppTest) -> str:
    return " ".join(c.value for c in at.sidebar.caption)


def test_choosing_an_option_grades_nothing_until_check():
    at = autograd("a" * 32)
    for option in LESSON.questions[0].options:  # what arrow keys do: land on each option in turn
        at.radio(key="03_autograd-q1").set_value(option.text).run()
        assert feedback(at) == []


def test_answers_stay_with_the_browser_and_the_sidebar_counts_them():
    browser = "b" * 32
    at = autograd(browser)
    first, second = LESSON.questions[:2]
    right = next(o for o in first.options if o.correct)
    wrong = next(o for o in second.options if not o.correct)
    for key, option in (("03_autograd-q1", right), ("03_autograd-q2", wrong)):
        at.radio(key=key).set_value(option.text)
        checks = [b for b in at.button if b.label == "Check"]
        checks[int(key[-1]) - 1].click().run()
    assert feedback(at) == [f"Right: {right.why}", f"Not quite: {wrong.why}"]
    assert f"lesson 3: 1 of {len(LESSON.questions)}" in sidebar(at)
    marks = " ".join(m.value for m in at.markdown)  # "why each answer": icons, not emoji (boxes without an emoji font)
    assert ":material/check_circle:" in marks and ":material/cancel:" in marks and "✅" not in marks and "❌" not in marks

    at.switch_page("pages/lesson_1_why.py").run()
    at.switch_page("pages/lesson_3_autograd.py").run()  # back again: still answered
    assert feedback(at) == [f"Right: {right.why}", f"Not quite: {wrong.why}"]
    again = autograd(browser)  # a reload or a new tab of the same browser
    assert feedback(again) == [f"Right: {right.why}", f"Not quite: {wrong.why}"]
    assert again.radio(key="03_autograd-q1").value == right.text
    assert feedback(autograd("c" * 32)) == [] and "Questions right" not in sidebar(autograd("c" * 32))


def test_no_answer_reads_right_twice():
    for path in lessons.lesson_files():
        for q in lessons.load(path.stem).questions:
            for option in q.options:
                assert not option.why.startswith(("Right", "Not quite")), (path.stem, option.why[:40])
