"""In headless Chromium: the keyboard reaches the questions, icons stay silent, charts fit a phone, dark follows the browser."""

from __future__ import annotations

import pytest

from tests.browser import MAIN, screenshot, serve, wait_for_app
from tests.run_folders import write_run

pytestmark = pytest.mark.browser

FOCUSED = "() => { const e = document.activeElement; return [e.tagName, e.type || '', (e.innerText || '').trim()] }"


def _overlap(a: dict, b: dict) -> bool:
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and a["y"] < b["y"] + b["height"]
        and b["y"] < a["y"] + a["height"]
    )


def test_keyboard_icons_phone_width_and_dark_theme(browser, tmp_path):
    write_run(tmp_path / "runs", "20261128-120000-abc123")
    env = {"CLASSROOM_RUNS_DIR": str(tmp_path / "runs"), "CLASSROOM_DATA_DIR": str(tmp_path / "data")}
    with serve(env) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url + "/?lang=en")  # the skip link's English words, whatever language the browser reports
        wait_for_app(page, timeout=120_000, heading="Why PyTorch")
        # The whole lesson drawn, from the skip link at its top to the questions at its foot, before counting stops
        page.locator(MAIN).get_by_role("link", name="Skip to the check questions (2)").wait_for(timeout=60_000)
        page.locator(f'{MAIN} input[type="radio"]').first.wait_for(state="attached", timeout=60_000)

        # Tab from the top of the page, taking the skip link when it comes: the first answer within 20 stops
        # (13 of them are the skip-to-content link, the language switch, the sidebar's pages and the menu). Without it: 45.
        stops, kind = 0, ""
        while kind != "radio" and stops < 30:
            stops += 1
            page.keyboard.press("Tab")
            tag, kind, text = page.evaluate(FOCUSED)
            if text.startswith("Skip to the check questions"):
                page.keyboard.press("Enter")
                page.wait_for_url("**#check-yourself-1", timeout=10_000)  # the browser has followed the link
        assert kind == "radio" and stops <= 20, f"first answer not reached in {stops} tab stops (at {tag} {text!r})"

        # Material icons are ligatures: their names are text in the DOM ("lightbulb"), so each must be hidden
        # from screen readers, and the sidebar's links are named by their titles alone.
        icons = page.locator('[data-testid="stIconMaterial"]')
        assert icons.count() >= 9
        assert page.locator('[data-testid="stIconMaterial"]:not([aria-hidden="true"])').count() == 0
        sidebar = page.locator('[data-testid="stSidebar"]')
        for title, icon in (("Why PyTorch", "lightbulb"), ("Train the CNN", "science"), ("All runs", "monitoring")):
            assert sidebar.get_by_role("link", name=title, exact=True).count() == 1
            assert sidebar.get_by_role("link", name=f"{icon} {title}").count() == 0

        # At a phone's width every chart's title is clear of its legend and there is no Plotly toolbar over it.
        phone = browser.new_page(viewport={"width": 390, "height": 844}, color_scheme="dark")
        phone.goto(url + "/runs?run=20261128-120000-abc123")
        wait_for_app(phone, timeout=120_000, heading="All runs")
        charts = phone.locator(f"{MAIN} .js-plotly-plot")
        charts.nth(1).wait_for(timeout=60_000)  # the run's loss and accuracy, each with a title and a legend
        assert phone.locator(f"{MAIN} .modebar-btn").count() == 0
        for i in range(charts.count()):
            chart = charts.nth(i)
            chart.scroll_into_view_if_needed()
            box = chart.bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= 390, "a chart wider than the phone"
            title, legend = chart.locator(".gtitle"), chart.locator(".legend")
            if title.count() and legend.count():
                assert not _overlap(title.bounding_box(), legend.bounding_box()), f"chart {i}: legend over the title"

        # The dark theme follows the browser: the app's background is dark when the browser prefers dark.
        background = phone.evaluate("getComputedStyle(document.querySelector('[data-testid=stApp]')).backgroundColor")
        red, green, blue = (int(v) for v in background[background.index("(") + 1 : background.index(")")].split(",")[:3])
        assert red + green + blue < 3 * 80, f"not dark: {background}"
        screenshot(phone, "runs_phone_dark")
        phone.close()
        page.close()
