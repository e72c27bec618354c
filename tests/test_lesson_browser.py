"""In headless Chromium: the autograd graph is drawn from its DOT in the browser, and a bad upload gets a message."""

from __future__ import annotations

import pytest

from tests.browser import screenshot, serve, wait_for_app

pytestmark = pytest.mark.browser


def test_autograd_graph_renders_and_bad_upload_is_refused(browser, tmp_path):
    env = {"CLASSROOM_RUNS_DIR": str(tmp_path / "runs"), "CLASSROOM_DATA_DIR": str(tmp_path / "data")}
    with serve(env) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url + "/lesson_3_autograd")
        wait_for_app(page, timeout=120_000, heading="Autograd")
        graph = page.locator('[data-testid="stGraphVizChart"] svg').first
        graph.wait_for(timeout=60_000)  # Graphviz runs in the browser: no dot binary on the server
        text = graph.text_content()
        assert "MulBackward0" in text and "SinBackward0" in text and "AccumulateGrad" in text
        screenshot(page, "lesson_3_autograd")

        page.goto(url + "/lesson_5_cnn")
        wait_for_app(page, timeout=120_000, heading="Anatomy of the CNN")
        page.get_by_text("An image of your own").wait_for(timeout=120_000)
        page.locator('input[type="file"]').set_input_files(
            files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hi"}]
        )
        page.get_by_text("That file cannot be used").wait_for(timeout=60_000)
        assert "not a known image format" in page.get_by_text("That file cannot be used").inner_text()
        page.close()
