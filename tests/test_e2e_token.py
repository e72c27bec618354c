"""The token gate in headless Chromium: a server started with CLASSROOM_TOKEN lets in only visitors who give it."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import expect

from tests.browser import screenshot, serve, wait_for_app

pytestmark = pytest.mark.browser

TOKEN = "s3cret-class-token"
SIGN_IN = "Class token"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    with serve(env={"CLASSROOM_TOKEN": TOKEN, "CLASSROOM_RUNS_DIR": str(runs)}) as url:
        yield url


@pytest.fixture
def page(browser):
    """A fresh browser context: a new visitor with a new Streamlit session."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    yield context.new_page()
    context.close()


def settle(page) -> None:
    wait_for_app(page, timeout=90_000)


def sign_in_box(page):
    return page.get_by_label(SIGN_IN, exact=True)


def wait_for_sign_in(page) -> None:
    sign_in_box(page).wait_for(timeout=90_000)
    settle(page)


def wait_for_app_frame(page) -> None:
    """The frame every page shares: the sidebar names the device and lists the pages."""
    page.locator('[data-testid="stSidebar"]').get_by_text("Device:").wait_for(timeout=90_000)
    settle(page)


def assert_only_sign_in(page) -> None:
    assert sign_in_box(page).count() == 1
    assert page.locator('[data-testid="stSidebarNav"]').count() == 0  # no list of pages to click around the gate
    assert page.locator('[data-testid="stSidebar"]').get_by_text("Device:").count() == 0
    assert page.locator('[data-testid="stException"]').count() == 0


def submit(page, token: str) -> None:
    sign_in_box(page).fill(token)
    page.get_by_role("button", name="Sign in").click()


def test_without_the_token_only_the_sign_in_box_shows(server, page):
    page.goto(server)
    wait_for_sign_in(page)
    assert_only_sign_in(page)
    screenshot(page, "token-sign-in")


def test_a_wrong_token_gets_a_message(server, page):
    page.goto(server)
    wait_for_sign_in(page)
    submit(page, "not-the-token")
    page.get_by_text("That token is not right").wait_for(timeout=30_000)
    settle(page)
    assert_only_sign_in(page)
    screenshot(page, "token-wrong")


def test_the_right_token_opens_the_app_and_page_switches_keep_it(server, page):
    page.goto(server)
    wait_for_sign_in(page)
    submit(page, TOKEN)
    wait_for_app_frame(page)
    expect(sign_in_box(page)).to_have_count(0, timeout=90_000)  # the box of the run before goes when this one ends
    for title, path in (("All runs", "runs"), ("Tensors", "lesson_2_tensors")):
        page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=title, exact=True).click()
        wait_for_app(page, timeout=90_000, path=path, heading=title)  # the page's title, drawn by its run
        wait_for_app_frame(page)
        expect(sign_in_box(page)).to_have_count(0, timeout=90_000)  # the box of the run before goes when this one ends
    screenshot(page, "token-signed-in")


def test_the_link_with_the_token_opens_the_app_and_drops_the_token(server, page):
    page.goto(f"{server}/runs?token={TOKEN}")
    wait_for_app_frame(page)
    expect(sign_in_box(page)).to_have_count(0, timeout=90_000)  # the box of the run before goes when this one ends
    page.wait_for_url(lambda u: "token" not in parse_qs(urlparse(u).query), timeout=30_000)
    assert urlparse(page.url).path.strip("/") == "runs"


def test_a_page_url_without_the_token_shows_the_sign_in_box(server, page):
    page.goto(server)  # (a cold server's very first request is the known hole: see test_access.py)
    wait_for_sign_in(page)
    page.goto(f"{server}/runs")
    wait_for_sign_in(page)
    assert_only_sign_in(page)
    page.goto(f"{server}/runs?token=wrong")
    page.get_by_text("That token is not right").wait_for(timeout=30_000)
    assert_only_sign_in(page)


def test_a_cold_server_gates_a_page_url_that_is_its_first_request(browser, tmp_path):
    """Streamlit's pages/ fallback would run pages/runs.py alone on a fresh server; the page hands itself to app.py."""
    with serve(env={"CLASSROOM_TOKEN": TOKEN, "CLASSROOM_RUNS_DIR": str(tmp_path)}) as url:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        try:
            page.goto(f"{url}/runs")
            wait_for_sign_in(page)
            assert_only_sign_in(page)
            assert page.get_by_text("All runs").count() == 0
            submit(page, TOKEN)
            wait_for_app_frame(page)
            page.get_by_role("heading", name="All runs").wait_for(timeout=30_000)  # the page the link asked for
        finally:
            context.close()
