"""In headless Chromium: lesson 5's convolution by hand follows the position slider, for conv1 and conv2."""

from __future__ import annotations

import pytest
import torch

from classroom import anatomy, data
from classroom.config import TUTORIAL_MEAN, TUTORIAL_STD
from classroom.models import build
from tests.browser import screenshot, serve, wait_for_app

pytestmark = pytest.mark.browser


def expected(layer: str, channel: int, row: int, col: int) -> str:
    """The sum the page must show: the same untrained Net (seed 0) on the same first synthetic test image."""
    net = build("net", generator=torch.Generator().manual_seed(0)).eval()
    image = data.make_shapes(n_train=0, n_test=200).test_x[0]
    step = anatomy.convolution_at(net, anatomy.to_input(image, TUTORIAL_MEAN, TUTORIAL_STD), layer, channel, row, col)
    return f"{step.total:.4f}"


def test_the_hand_sum_follows_the_position_and_the_layer(browser, tmp_path):
    env = {"CLASSROOM_RUNS_DIR": tmp_path / "runs", "CLASSROOM_DATA_DIR": tmp_path / "data"}  # no CIFAR-10: shapes
    before, after, conv2 = expected("conv1", 0, 12, 12), expected("conv1", 0, 12, 13), expected("conv2", 0, 3, 3)
    assert before != after  # or the test below could not see the change
    with serve({k: str(v) for k, v in env.items()}) as url:
        # A phone's width in the dark theme; tall, so every chart of the lesson is drawn for the screenshot
        page = browser.new_page(viewport={"width": 390, "height": 12000}, color_scheme="dark")
        page.goto(url + "/lesson_5_cnn")
        wait_for_app(page, timeout=120_000, heading="Anatomy of the CNN")
        by_hand = page.get_by_text("By hand:").locator("..")  # the paragraph, not only its bold label
        by_hand.wait_for(timeout=120_000)
        pytorch = page.get_by_text("PyTorch:", exact=True).locator("..")
        assert f"= {before}" in by_hand.inner_text()
        assert "self.conv1(x)[0, 0, 12, 12]" in pytorch.inner_text() and before in pytorch.inner_text()
        page.get_by_text("The same value").wait_for()

        column = page.locator('[data-testid="stSlider"]').filter(has_text="Column").locator('input[type="range"]')
        column.focus()
        column.press("ArrowRight")  # column 12 -> 13
        by_hand.filter(has_text=f"= {after}").wait_for(timeout=60_000)
        pytorch.filter(has_text="self.conv1(x)[0, 0, 12, 13]").wait_for(timeout=60_000)
        assert after in pytorch.inner_text()
        page.locator('[data-testid="stSkeleton"]').first.wait_for(state="detached", timeout=60_000)
        screenshot(page, "lesson_5_convolution_phone_dark")

        page.locator('[data-testid="stRadio"]').filter(has_text="Convolution").get_by_text("conv2", exact=True).click()
        by_hand.filter(has_text=f"= {conv2}").wait_for(timeout=60_000)
        assert "150 products (6 channels × 5×5), added up" in by_hand.inner_text()
        assert "self.conv2(x)[0, 0, 3, 3]" in pytorch.inner_text()
        page.get_by_text("The same value").wait_for()
        page.close()
