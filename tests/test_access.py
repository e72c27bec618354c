"""The classroom token gate in AppTest: open without a token; with one, nothing but the sign-in box until it is given."""

import time
from pathlib import Path

import pytest
from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest

from ui import access

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TOKEN = "correct-horse-battery"


@pytest.fixture(autouse=True)
def quiet_env(monkeypatch, tmp_path):
    monkeypatch.delenv("CLASSROOM_TOKEN", raising=False)
    monkeypatch.delenv("CLASSROOM_INSTRUCTOR_TOKEN", raising=False)
    monkeypatch.setenv("CLASSROOM_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setattr(access, "WRONG_TOKEN_DELAY", 0.2)


@pytest.fixture
def warm_server(monkeypatch):
    """A server where app.py has run st.navigation once, as in a real one after its first visitor.

    AppTest starts every run as a cold process, where Streamlit runs a pages/*.py file on its own
    (no app.py, so no gate and no frame) because a folder named pages/ sits beside app.py.
    """
    cold_init = PagesManager.__init__

    def warm_init(self, *args, **kwargs):
        cold_init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", warm_init)


def app(**query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(query)
    return at.run()


def sign_in_box(at: AppTest) -> bool:
    return any(t.label == "Class token" for t in at.text_input)


def app_shown(at: AppTest) -> bool:
    """The frame every page shares is drawn: the sidebar names the device."""
    return any(c.value.startswith("Device:") for c in at.sidebar.caption)


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def test_without_a_token_the_app_is_open():
    at = app()
    assert not at.exception
    assert app_shown(at) and not sign_in_box(at)


def test_with_a_token_only_the_sign_in_box_shows(monkeypatch):
    monkeypatch.setenv("CLASSROOM_TOKEN", TOKEN)
    at = app()
    assert not at.exception
    assert sign_in_box(at) and not app_shown(at)
    assert len(at.sidebar.caption) == 0 and not errors(at)
    assert at.text_input[0].proto.type == at.text_input[0].proto.PASSWORD  # not echoed on a projector


def test_a_wrong_token_gets_a_message_and_a_delay(monkeypatch):
    monkeypatch.setenv("CLASSROOM_TOKEN", TOKEN)
    at = app()
    for wrong in ("correct-horse", TOKEN + "x", "", "jötunheim ✓"):  # non-ASCII must not crash compare_digest
        at.text_input[0].input(wrong)
        start = time.monotonic()
        at.button[0].click().run()
        assert not at.exception
        assert sign_in_box(at) and not app_shown(at)
        assert errors(at) and "not right" in errors(at)[0]
        assert time.monotonic() - start >= access.WRONG_TOKEN_DELAY


def test_the_right_token_opens_the_app_and_page_switches_do_not_ask_again(monkeypatch, warm_server):
    monkeypatch.setenv("CLASSROOM_TOKEN", TOKEN)
    at = app()
    at.text_input[0].input(" " + TOKEN + " ")  # pasted with spaces around it
    at.button[0].click().run()
    assert not at.exception and not errors(at)
    assert app_shown(at) and not sign_in_box(at)
    at.switch_page("pages/runs.py").run()
    assert not at.exception and app_shown(at) and not sign_in_box(at)
    at.switch_page("pages/lesson_2_tensors.py").run()
    assert not at.exception and app_shown(at) and not sign_in_box(at)


def test_the_token_in_the_link_opens_the_app_and_leaves_the_address_bar(monkeypatch, warm_server):
    monkeypatch.setenv("CLASSROOM_TOKEN", TOKEN)
    at = app(token=TOKEN)
    assert not at.exception
    assert app_shown(at) and not sign_in_box(at)
    assert "token" not in at.query_params
    at.switch_page("pages/runs.py").run()
    assert app_shown(at) and not sign_in_box(at)


def test_a_wrong_token_in_the_link_shows_the_box_with_a_message(monkeypatch):
    monkeypatch.setenv("CLASSROOM_TOKEN", TOKEN)
    at = app(token="guess")
    assert sign_in_box(at) and not app_shown(at)
    assert "not right" in errors(at)[0]
    assert "token" not in at.query_params
    at.run()  # the next rerun has no token in the link any more: the box, without the old message
    assert sign_in_box(at) and not errors(at)


def test_a_page_url_is_gated_once_the_server_is_warm(monkeypatch, warm_server):
    monkeypatch.setenv("CLASSROOM_TOKEN", TOKEN)
    at = app()
    at.switch_page("pages/runs.py").run()
    assert sign_in_box(at) and not app_shown(at)


def cold_page_params() -> list:
    """Every page of the app; a page file that does not yet hand itself to app.py's router (frame.ensure_router)
    is expected to show without the gate when it is a cold server's first request."""
    root, params = Path(APP).parent, []
    for path in sorted(p.relative_to(root).as_posix() for p in (root / "pages").glob("*.py")):
        routed = "ensure_router()" in (root / path).read_text()
        reason = "a cold server runs a pages/*.py file on its own (no app.py, no gate) unless it calls frame.ensure_router()"
        params.append(pytest.param(path, marks=() if routed else pytest.mark.xfail(strict=True, reason=reason), id=path))
    return params


@pytest.mark.parametrize("path", cold_page_params())
def test_a_page_url_opened_first_on_a_cold_server_is_gated_too(monkeypatch, path):
    monkeypatch.setenv("CLASSROOM_TOKEN", TOKEN)
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page(path).run()  # the first request of a server that has run nothing yet lands on this page
    assert not at.exception
    assert sign_in_box(at) and not app_shown(at)
    assert not at.title or [t.value for t in at.title] == [":material/local_fire_department: Torch Classroom"]


def feature_page():
    from ui import access, instructor

    if access.signed_in():
        instructor.feature_control("20260101-000000-abcdef")
    else:
        access.sign_in_box()


def feature_buttons(**query) -> list[str]:
    at = AppTest.from_function(feature_page, default_timeout=30)
    at.query_params.update(query)
    at.run()
    assert not at.exception
    return [b.label for b in at.button if b.label != "Sign in"]


def test_who_is_the_instructor(monkeypatch):
    assert feature_buttons() == ["Feature for the class"]  # an open app: everyone is the instructor
    monkeypatch.setenv("CLASSROOM_TOKEN", TOKEN)
    assert feature_buttons() == []  # not signed in
    assert feature_buttons(token=TOKEN) == []  # without an instructor token, the class token makes a student
    monkeypatch.setenv("CLASSROOM_INSTRUCTOR_TOKEN", "teacher-only")
    assert feature_buttons(token=TOKEN) == []  # with an instructor token, the class token makes a student
    assert feature_buttons(token="teacher-only") == ["Feature for the class"]
    assert access.role_of(TOKEN) == "student" and access.role_of("teacher-only") == "instructor"
    assert access.role_of("teacher") is None and access.role_of("") is None
