"""End to end in headless Chromium: every page loads, a run on shapes trains live, survives a page switch, ends with results."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest
from playwright.sync_api import expect

from tests.browser import screenshot, serve, wait_for_app

pytestmark = pytest.mark.browser

# Sidebar title -> the URL path st.navigation gives the page (from its file name; the default page is "/").
PAGES = {
    "Why PyTorch": "", "Tensors": "lesson_2_tensors", "Autograd": "lesson_3_autograd", "Dynamic graphs": "lesson_4_dynamic",
    "Anatomy of the CNN": "lesson_5_cnn", "CPU and GPU": "lesson_6_devices", "Training a classifier": "lesson_7_classifier",
    "Training on many GPUs": "lesson_8_parallel",
    "Train the CNN": "lab", "All runs": "runs",
}  # fmt: skip

# The number of points of the plotly chart whose title starts with the given text (-1 when there is no such chart).
POINTS = """(title) => {
  for (const el of document.querySelectorAll('.js-plotly-plot')) {
    const t = el.layout && el.layout.title && (el.layout.title.text || el.layout.title);
    if (typeof t === 'string' && t.replace(/<[^>]+>/g, '').startsWith(title)) return el.data[0].x.length;
  }
  return -1;
}"""


def settle(page, timeout: float = 60) -> None:
    """After page.goto or a widget change: the page has content and the script run is over."""
    wait_for_app(page, timeout=timeout * 1000)


def no_exception(page, where: str) -> None:
    shown = page.locator('[data-testid="stException"]')
    assert shown.count() == 0, f"{where}: {shown.first.inner_text()[:500]}"


def go(page, title: str) -> None:
    """Open a page from the sidebar: its URL, its title drawn by the new run (every page's title is its sidebar
    title), then the end of that run."""
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=title, exact=True).click()
    wait_for_app(page, timeout=60_000, path=PAGES[title], heading=title)
    no_exception(page, title)


def set_number(page, label: str, value: int | float) -> None:
    """Type a number and commit it with Enter (every later rerun, Start's included, sends it with the others)."""
    field = page.get_by_label(label, exact=True)
    field.fill(str(value))
    field.press("Enter")
    js = "([l, v]) => parseFloat(document.querySelector(`input[aria-label='${l}']`).value) === v"
    page.wait_for_function(js, arg=[label, value], timeout=30_000)
    settle(page)


def wait_for_points(page, title: str, at_least: int, timeout: float) -> int:
    """Wait (in the page, as it redraws) until the chart titled `title` has at least `at_least` points; how many."""
    js = f"([title, n]) => {{ const k = ({POINTS})(title); return k >= n ? k : 0; }}"
    return page.wait_for_function(js, arg=[title, at_least], timeout=timeout * 1000).json_value()


@pytest.mark.timeout(600)  # its own waits allow a slow run 3.5 minutes, with ten page loads besides
def test_train_live_in_the_browser(browser, tmp_path):
    env = {"CLASSROOM_RUNS_DIR": str(tmp_path / "runs"), "CLASSROOM_DATA_DIR": str(tmp_path / "data")}
    with serve(env) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 2200})
        page.goto(url)
        settle(page)
        no_exception(page, "home")
        for title in PAGES:
            go(page, title)
            screenshot(page, "e2e-page-" + title.lower().replace(" ", "-"))

        go(page, "Train the CNN")
        assert page.get_by_label("shapes (synthetic)").is_checked()  # no CIFAR-10 here: shapes is preselected
        set_number(page, "Epochs", 200)  # far longer than the test: it stops the run itself, whatever the machine's speed
        set_number(page, "Batch size", 32)
        set_number(page, "Learning rate", 0.02)
        page.get_by_text("More knobs").click()
        set_number(page, "Loss report every (steps)", 10)
        set_number(page, "Steps per epoch cap (0 = all)", 150)
        screenshot(page, "e2e-lab-before")
        page.get_by_role("button", name="Start training").click()

        # The loss chart gains points while the run trains, redrawn by the page's poller.
        first = wait_for_points(page, "Training loss", 1, 60)
        more = wait_for_points(page, "Training loss", first + 1, 30)
        assert page.get_by_text("images/s").count() > 0  # the progress line: epoch, step, speed, time left
        screenshot(page, "e2e-lab-during")

        # A page switch does not stop the run; the sidebar shows it going; back in the lab it has moved on.
        go(page, "Tensors")
        sidebar = page.locator('[data-testid="stSidebar"]')
        expect(sidebar).to_contain_text("Your run:", timeout=30_000)
        screenshot(page, "e2e-lesson-while-training")
        go(page, "Train the CNN")
        wait_for_points(page, "Training loss", more + 1, 30)  # the run went on after the page switch

        # Two epochs in, the student stops it: per-class accuracy as a chart and as the tutorial's lines, the gallery.
        page.get_by_text("Test results after epoch 2").first.wait_for(timeout=120_000)
        page.locator('[data-testid="stMain"]').get_by_role("button", name="Stop", exact=True).click()
        page.get_by_text("Sample test images").first.wait_for(timeout=90_000)  # the run has ended, with its results
        settle(page)
        no_exception(page, "lab after the run")
        assert page.evaluate(POINTS, "Test accuracy per class") == 10
        reported = page.evaluate(POINTS, "Training loss")
        assert reported >= 2 * 150 // 10  # every report of the two epochs at least (a report per 10 steps)
        assert page.get_by_text("Accuracy for class: circle").count() > 0
        screenshot(page, "e2e-lab-after")

        # The sidebar links to the ended run on the runs page (?run=ID), which draws the same charts from the record.
        page.locator('[data-testid="stSidebar"]').get_by_role("link", name="See it in All runs").click()
        page.wait_for_url(lambda u: urlparse(u).path.strip("/") == "runs" and "run=" in u)
        assert wait_for_points(page, "Training loss", reported, 30) == reported  # the run's loss chart, from its record
        wait_for_app(page, timeout=60_000, path="runs", heading="All runs")
        no_exception(page, "runs page")
        assert page.get_by_text("Sample test images").count() > 0
        screenshot(page, "e2e-runs")


@pytest.mark.timeout(600)  # its own waits allow a slow run 4 minutes
def test_a_closed_tab_leaves_its_run_going_and_viewable(browser, tmp_path):
    """A student closes the tab mid-run: the run trains on, and a new tab (a new session) watches it finish."""
    runs = tmp_path / "runs"
    env = {"CLASSROOM_RUNS_DIR": str(runs), "CLASSROOM_DATA_DIR": str(tmp_path / "data")}
    with serve(env) as url:
        first = browser.new_page(viewport={"width": 1400, "height": 2200})
        first.goto(f"{url}/lab")
        settle(first)
        set_number(first, "Epochs", 25)  # long enough to be going when its tab closes, on a fast machine too
        set_number(first, "Batch size", 32)
        first.get_by_text("More knobs").click()
        set_number(first, "Loss report every (steps)", 10)
        set_number(first, "Steps per epoch cap (0 = all)", 150)
        first.get_by_role("button", name="Start training").click()
        wait_for_points(first, "Training loss", 1, 60)
        first.close()  # the tab goes, and its session with it
        run = next(runs.iterdir())
        assert not (run / "results.json").exists()  # still training when its tab closed

        second = browser.new_page(viewport={"width": 1400, "height": 2200})
        second.goto(f"{url}/runs?run={run.name}")
        wait_for_points(second, "Training loss", 1, 60)  # the run, on the runs page
        second.get_by_text("Sample test images").first.wait_for(timeout=180_000)  # the run has finished
        settle(second)
        no_exception(second, "runs page after the closed tab's run")
        assert second.evaluate(POINTS, "Training loss") == 25 * 150 // 10  # every step of every epoch: it went on
        assert second.evaluate(POINTS, "Test accuracy per class") == 10
        screenshot(second, "e2e-closed-tab-run-finished")
