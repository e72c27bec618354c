"""Markdown in user-given text, in headless Chromium: a run's name and a ?run= link show as the text typed, and no
viewer's browser fetches the image, follows the link or draws the colour, icon or formula written in them."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from classroom.config import TrainConfig
from classroom.runs import RunManager
from tests.browser import screenshot, serve, wait_for_app

pytestmark = pytest.mark.browser

HOSTILE = "127.0.0.1:9"  # nothing listens on the discard port: a request there would only show in the log below
NAME = f"![x](http://{HOSTILE}/t.png) :red[r] :material/home: $x$ <b>b</b>"
ASKED = f"![q](http://{HOSTILE}/q) :red[r] $x$"  # at most 40 characters: the page shows no more
QUICK = TrainConfig(data="shapes", batch_size=64, lr=0.02, epochs=1, log_interval=5, max_steps=10, device="cpu", name=NAME)
# What the markdown would have made of them: an image, a link, a colour, a Material icon, a KaTeX formula.
RENDERED = ["img[src*='127.0.0.1:9']", "a[href*='127.0.0.1:9']", "a[href*='evil']", "[aria-label='home icon']", ".katex"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(base URL, run id): a server reading a finished run named NAME that an earlier server left on disk."""
    root = tmp_path_factory.mktemp("e2e-injection")
    earlier = RunManager(root / "runs")
    run_id = earlier.submit(QUICK)
    assert earlier.wait(run_id, timeout=120).status == "finished"
    earlier.shutdown()
    with serve({"CLASSROOM_RUNS_DIR": str(root / "runs"), "CLASSROOM_DATA_DIR": str(root / "data")}) as url:
        yield url, run_id


def settle(page) -> None:
    wait_for_app(page, timeout=90_000)


def assert_nothing_rendered(page, requests: list[str]) -> None:
    for selector in RENDERED:
        assert page.locator(selector).count() == 0, f"{selector} on the page"
    assert not [u for u in requests if HOSTILE in u or "evil" in u], requests


def test_markdown_in_a_run_name_and_in_a_link_shows_as_typed(browser, server):
    url, run_id = server
    context = browser.new_context(viewport={"width": 1400, "height": 1600})
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    try:
        page.goto(f"{url}/runs?run={run_id}")
        status = page.locator("[data-testid='stMarkdownContainer']").filter(has_text=f"run {run_id}").first
        status.wait_for(timeout=90_000)
        settle(page)
        assert status.locator("em").inner_text() == NAME  # the name, as typed, in the run's status line
        assert status.locator(".stMarkdownColoredText").count() == 0
        assert_nothing_rendered(page, requests)
        screenshot(page, "injection-run-name")

        page.goto(f"{url}/runs?run={quote(ASKED)}")
        warning = page.locator("[data-testid='stAlert']").filter(has_text="The link asks for run")
        warning.wait_for(timeout=90_000)
        settle(page)
        assert warning.inner_text() == f"The link asks for run {ASKED!r}, which is not a run id. Pick one below."
        assert warning.locator(".stMarkdownColoredText").count() == 0
        assert_nothing_rendered(page, requests)
        screenshot(page, "injection-run-link")
    finally:
        context.close()
