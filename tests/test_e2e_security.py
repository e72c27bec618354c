"""A class in headless Chromium: a student's run is theirs across reloads and tabs, no other student can stop it,
the instructor can; downloads and the metrics endpoint are for signed-in browsers only."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from playwright.sync_api import expect

from tests.browser import screenshot, serve, wait_for_app

pytestmark = pytest.mark.browser

TOKEN, TEACHER = "class-token-for-security", "teacher-token-for-security"
WAIT = 90_000  # ms: two busy cores in CI


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    env = {"CLASSROOM_TOKEN": TOKEN, "CLASSROOM_INSTRUCTOR_TOKEN": TEACHER, "CLASSROOM_RUNS_DIR": str(runs),
           "CLASSROOM_DATA_DIR": str(tmp_path_factory.mktemp("data"))}  # fmt: skip
    with serve(env=env) as url:
        yield url, runs


def browser_context(browser):
    return browser.new_context(viewport={"width": 1400, "height": 2000})


def open_signed_in(context, url: str):
    page = context.new_page()
    page.goto(url)
    page.locator('[data-testid="stSidebar"]').get_by_text("Device:").wait_for(timeout=WAIT)
    wait_for_app(page, timeout=WAIT)
    return page


def control(page, name: str):
    """A run's Pause or Stop button, in the page itself (Streamlit's toolbar has a Stop of its own while a script runs)."""
    return page.locator('[data-testid="stMain"]').get_by_role("button", name=name, exact=True)


def set_number(page, label: str, value: int) -> None:
    field = page.get_by_label(label, exact=True)
    field.fill(str(value))
    field.press("Enter")
    expect(field).to_have_value(str(value), timeout=WAIT)


def status(code_of) -> int:
    try:
        return code_of()
    except urllib.error.HTTPError as e:
        return e.code


def test_a_students_run_is_theirs_across_reloads_and_tabs_and_only_the_instructor_may_stop_it(browser, server):
    url, runs = server
    student = browser_context(browser)
    lab = open_signed_in(student, f"{url}/lab?token={TOKEN}")
    set_number(lab, "Epochs", 200)  # long enough to be stopped by hand
    lab.get_by_text("More knobs").click()
    set_number(lab, "Steps per epoch cap (0 = all)", 100)
    lab.get_by_role("button", name="Start training").click()
    expect(control(lab, "Stop")).to_be_visible(timeout=WAIT)
    run_id = next(runs.iterdir()).name

    # A reload is the same student: still signed in, "Your run" with its controls, Start disabled.
    lab.reload()
    expect(lab.get_by_role("heading", name="Your run")).to_be_visible(timeout=WAIT)
    expect(control(lab, "Stop")).to_be_visible(timeout=WAIT)
    expect(lab.get_by_role("button", name="Start training")).to_be_disabled(timeout=WAIT)
    assert lab.get_by_label("Class token", exact=True).count() == 0
    # So is a second tab of the same browser.
    tab = open_signed_in(student, f"{url}/lab")
    expect(control(tab, "Stop")).to_be_visible(timeout=WAIT)
    expect(tab.get_by_role("button", name="Start training")).to_be_disabled(timeout=WAIT)
    tab.close()

    # Another student sees the run, without its controls, and cannot reach the metrics endpoint.
    other = browser_context(browser)
    theirs = open_signed_in(other, f"{url}/runs?run={run_id}&token={TOKEN}")
    expect(theirs.get_by_text(run_id).first).to_be_visible(timeout=WAIT)
    expect(theirs.get_by_text("images/s").first).to_be_visible(timeout=WAIT)  # the live view is drawn
    assert control(theirs, "Stop").count() == 0
    assert control(theirs, "Pause").count() == 0
    screenshot(theirs, "security-another-students-run")
    assert other.request.get(f"{url}/_stcore/metrics").status == 403
    assert not (runs / run_id / "results.json").exists()  # still training

    # The instructor may stop it (and only stop it: pausing is the student's).
    teacher = browser_context(browser)
    view = open_signed_in(teacher, f"{url}/runs?run={run_id}&token={TEACHER}")
    expect(control(view, "Stop")).to_be_visible(timeout=WAIT)
    assert control(view, "Pause").count() == 0
    assert teacher.request.get(f"{url}/_stcore/metrics").status == 200
    control(view, "Stop").click()
    expect(lab.get_by_text("Sample test images")).to_be_visible(timeout=WAIT)  # the student's lab: stopped, with results

    # The gallery's images are served to signed-in browsers only.
    image = lab.locator('[data-testid="stImage"] img').first
    expect(image).to_be_visible(timeout=WAIT)
    src = image.get_attribute("src")
    assert src.startswith(url) or src.startswith("/media/") or "/media/" in src
    media = src if src.startswith("http") else url + src
    assert student.request.get(media).status == 200
    assert status(lambda: urllib.request.urlopen(media, timeout=10).status) == 403  # no cookie: nobody
    assert status(lambda: urllib.request.urlopen(f"{url}/_stcore/metrics", timeout=10).status) == 403
    for page in (lab, theirs, view):
        assert page.locator('[data-testid="stException"]').count() == 0
    for context in (student, other, teacher):
        context.close()
