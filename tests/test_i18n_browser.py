"""Czech in headless Chromium: the sidebar's switch changes the language mid-run and back without losing the run, page
switches keep ?lang=cs, and every page draws in Czech (screenshots under test-artifacts/, to be checked by eye)."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest
from playwright.sync_api import expect

from tests.browser import MAIN, screenshot, serve, wait_for_app
from tests.test_e2e import no_exception, set_number, settle, wait_for_points

pytestmark = pytest.mark.browser

SIDEBAR = '[data-testid="stSidebar"]'
# Sidebar title in Czech -> the URL path st.navigation gives the page (from its file name, the same in every language).
CZECH = {
    "Proč PyTorch": "", "Tenzory": "lesson_2_tensors", "Autograd": "lesson_3_autograd", "Dynamické grafy": "lesson_4_dynamic",
    "Anatomie konvoluční sítě": "lesson_5_cnn", "CPU a GPU": "lesson_6_devices", "Trénování klasifikátoru": "lesson_7_classifier",
    "Trénování na více GPU": "lesson_8_parallel", "Natrénujte CNN": "lab", "Všechny běhy": "runs",
}  # fmt: skip
SLOW = {"lesson_7_classifier", "lesson_8_parallel"}  # they run the tutorial's training and two torchrun launches first


def switch(page, language: str, lang: str, heading: str) -> None:
    """Choose a language in the sidebar: the address says it, and the page is drawn again in it."""
    page.locator(SIDEBAR).get_by_text(language, exact=True).click()
    page.wait_for_url(lambda u: f"lang={lang}" in urlparse(u).query, timeout=30_000)
    wait_for_app(page, timeout=180_000, heading=heading)  # a busy server (lesson 7's training, a live run) is slow
    no_exception(page, f"after switching to {language}")


def go(page, title: str, timeout: float = 180_000) -> None:  # 60 s was too short in a full CI run
    """Open a page from the Czech sidebar: its URL (still saying lang=cs), its Czech title, the end of its script run."""
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=title, exact=True).click()
    wait_for_app(page, timeout=timeout, path=CZECH[title], heading=title)
    page.wait_for_url(lambda u: "lang=cs" in urlparse(u).query, timeout=30_000)
    no_exception(page, title)


@pytest.mark.timeout(600)  # its own waits allow a slow run several minutes
def test_switching_to_czech_and_back_mid_run_keeps_the_run(browser, tmp_path):
    env = {"CLASSROOM_RUNS_DIR": str(tmp_path / "runs"), "CLASSROOM_DATA_DIR": str(tmp_path / "data")}
    with serve(env) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 2200}, locale="en-US")
        page.goto(f"{url}/lab")
        settle(page)
        set_number(page, "Epochs", 200)  # far longer than the test: it stops the run itself
        set_number(page, "Batch size", 32)
        set_number(page, "Learning rate", 0.02)
        page.get_by_text("More knobs").click()
        set_number(page, "Loss report every (steps)", 10)
        set_number(page, "Steps per epoch cap (0 = all)", 150)
        page.get_by_role("button", name="Start training").click()
        first = wait_for_points(page, "Training loss", 1, 60)

        # In Czech the same run goes on: its chart gains points under its Czech title, its controls speak Czech.
        switch(page, "Čeština", "cs", "Natrénujte CNN")
        more = wait_for_points(page, "Trénovací ztráta", first + 1, 60)
        expect(page.locator(MAIN)).to_contain_text("obrázků/s", timeout=30_000)
        expect(page.locator(MAIN).get_by_role("button", name="Zastavit", exact=True)).to_be_visible()
        screenshot(page, "i18n-lab-during-run-cs")

        # A page switch keeps Czech (the address keeps ?lang=cs); back in the lab the run has moved on.
        go(page, "Tenzory")
        go(page, "Natrénujte CNN")
        more = wait_for_points(page, "Trénovací ztráta", more + 1, 60)

        # And back to English: the run is still there and still going.
        switch(page, "English", "en", "Train the CNN")
        wait_for_points(page, "Training loss", more + 1, 60)
        stop = page.locator(MAIN).get_by_role("button", name="Stop", exact=True)
        expect(stop).to_be_visible()
        screenshot(page, "i18n-lab-during-run-en")
        stop.click()
        expect(page.locator(MAIN)).to_contain_text("stopped", timeout=90_000)
        no_exception(page, "lab after the stop")


@pytest.mark.timeout(900)  # lessons 7 and 8 run the tutorial's training and two torchrun launches in Czech first
def test_every_page_draws_in_czech(browser, tmp_path):
    env = {"CLASSROOM_RUNS_DIR": str(tmp_path / "runs"), "CLASSROOM_DATA_DIR": str(tmp_path / "data")}
    with serve(env) as url:
        # Streamlit scrolls its main container, not the page: a tall window shows (and screenshots) a whole page.
        page = browser.new_page(viewport={"width": 1400, "height": 9000}, locale="cs-CZ")
        page.goto(url)  # no ?lang=: the browser's Accept-Language (cs-CZ) chooses Czech
        settle(page)
        expect(page.locator(MAIN).get_by_role("heading", name="Proč PyTorch", exact=True)).to_be_visible()
        for title, path in CZECH.items():
            go(page, title, timeout=300_000 if path in SLOW else 60_000)
            if path == "lesson_7_classifier":  # the tutorial's run on this server: wait for its last block
                expect(page.locator(MAIN)).to_contain_text("Tento kód proběhl na tomto serveru jednou", timeout=300_000)
                settle(page)
            screenshot(page, f"i18n-cs-{path or 'lesson_1_why'}")
