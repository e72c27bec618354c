"""Lesson 5's inside view of the CNN: one convolution output summed by hand, every layer's activations, the page."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from streamlit.testing.v1 import AppTest

from classroom import anatomy, data
from classroom.config import TUTORIAL_MEAN, TUTORIAL_STD
from classroom.models import Net, WideNet, build

ROOT = Path(__file__).resolve().parent.parent
STEPS = ["conv1", "relu", "pool", "conv2", "relu", "pool", "flatten", "fc1", "relu", "fc2", "relu", "fc3 (logits)", "softmax"]


def image_batch(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return anatomy.to_input(torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8, generator=g))


@pytest.mark.parametrize("model", [Net, WideNet])
def test_the_hand_sum_is_the_value_conv2d_computes_at_random_positions(model):
    torch.manual_seed(0)
    net, x = model().eval(), image_batch()
    # What each layer reads, computed here without the engine: the image, then pool(relu(conv1(x)))
    reads = {"conv1": x, "conv2": F.max_pool2d(F.relu(F.conv2d(x, net.conv1.weight, net.conv1.bias)), 2)}
    g = torch.Generator().manual_seed(1)
    for layer, inputs in reads.items():
        conv = getattr(net, layer)
        expected = F.conv2d(inputs, conv.weight, conv.bias)[0].detach()  # [C_out, H_out, W_out]
        for _ in range(25):
            c, i, j = (int(torch.randint(0, n, (1,), generator=g)) for n in expected.shape)
            step = anatomy.convolution_at(net, x, layer, c, i, j)
            assert step.total == pytest.approx(float(expected[c, i, j]), abs=1e-5)
            assert step.pytorch == pytest.approx(float(expected[c, i, j]), abs=1e-6)
            assert torch.equal(step.window, inputs[0, :, i : i + 5, j : j + 5])  # the 5x5 window under the kernel
            assert torch.equal(step.kernel, conv.weight[c].detach())
            assert torch.allclose(step.products, step.window.double() * step.kernel.double())
            assert step.per_channel.sum().item() + step.bias == pytest.approx(step.total)
            assert (step.top, step.left) == (i, j) and step.code == f"self.{layer}(x)[0, {c}, {i}, {j}]"
        assert step.window.shape == (conv.in_channels, 5, 5) and step.products.numel() == conv.in_channels * 25


def test_a_position_outside_the_map_or_a_layer_that_is_no_convolution_is_refused():
    net, x = Net().eval(), image_batch()
    for layer, channel, row, col in [("conv1", 6, 0, 0), ("conv1", 0, 28, 0), ("conv2", 0, 0, 10), ("conv2", -1, 0, 0)]:
        with pytest.raises(IndexError):
            anatomy.convolution_at(net, x, layer, channel, row, col)
    with pytest.raises(ValueError):
        anatomy.convolution_at(net, x, "fc1", 0, 0, 0)


def test_every_layer_s_activation_in_forward_order_with_its_shape():
    torch.manual_seed(0)
    net, x = Net().eval(), image_batch()
    steps = anatomy.activations(net, x)
    assert [a.name for a in steps] == STEPS
    shapes = [(1, 6, 28, 28), (1, 6, 28, 28), (1, 6, 14, 14), (1, 16, 10, 10), (1, 16, 10, 10), (1, 16, 5, 5),
              (1, 400), (1, 120), (1, 120), (1, 84), (1, 84), (1, 10), (1, 10)]  # fmt: skip
    assert [a.shape for a in steps] == shapes and all(a.value.shape == a.shape[1:] for a in steps)
    with torch.no_grad():
        conv1 = net.conv1(x)
        assert torch.equal(steps[0].value, conv1[0]) and torch.equal(steps[2].value, net.pool(F.relu(conv1))[0])
        assert torch.equal(steps[11].value, net(x)[0])  # the logits are what forward returns
    assert (steps[1].value >= 0).all() and (steps[1].value == conv1[0].clamp_min(0)).all()
    wide = [a.shape for a in anatomy.activations(WideNet().eval(), x)]
    assert wide[0] == (1, 32, 28, 28) and wide[3] == (1, 64, 10, 10) and wide[6] == (1, 1600)


def test_the_softmax_sums_to_one_and_agrees_with_the_prediction():
    torch.manual_seed(3)
    net = Net().eval()
    image = data.make_shapes(n_train=0, n_test=5).test_x[2]
    probs = anatomy.activations(net, anatomy.to_input(image))[-1].value
    assert probs.sum().item() == pytest.approx(1.0, abs=1e-6) and (probs > 0).all()
    with torch.no_grad():
        assert torch.allclose(probs, F.softmax(net(anatomy.to_input(image)), dim=1)[0])
    top = anatomy.top_k(net, image, data.CIFAR10_CLASSES, k=3)
    assert top[0][0] == data.CIFAR10_CLASSES[int(probs.argmax())]
    assert [p for _, p in top] == pytest.approx(probs.sort(descending=True).values[:3].tolist())


# --- the page ---------------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No runs and no CIFAR-10: the untrained Net (seed 0) on the synthetic shapes' first test image."""
    from ui import state

    runs = SimpleNamespace(list=lambda: [], checkpoint_path=lambda _: None, active_run=lambda _: None, loading=set)
    monkeypatch.setattr(state, "manager", lambda: runs)
    monkeypatch.setenv("CLASSROOM_DATA_DIR", str(tmp_path / "data"))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def shown(layer: str, channel: int, row: int, col: int) -> anatomy.Convolution:
    """What the page must compute: the same untrained Net on the same image."""
    net = build("net", generator=torch.Generator().manual_seed(0)).eval()
    image = data.make_shapes(n_train=0, n_test=200).test_x[0]
    return anatomy.convolution_at(net, anatomy.to_input(image, TUTORIAL_MEAN, TUTORIAL_STD), layer, channel, row, col)


def array(value) -> np.ndarray:
    """A plotly JSON array: a list, or the typed array ({dtype, bdata, shape}) plotly writes for a numpy one."""
    if not isinstance(value, dict):
        return np.asarray(value)
    flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
    return flat.reshape([int(n) for n in str(value.get("shape", len(flat))).split(",")])


def texts(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


def test_lesson_5_works_out_a_convolution_and_shows_every_layer():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.switch_page("pages/lesson_5_cnn.py").run()
    assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]
    step = shown("conv1", 0, 12, 12)  # the sliders' starting point: filter 0, the middle of the 28x28 map
    assert f"= **{step.total:.4f}**" in texts(at) and f"`self.conv1(x)[0, 0, 12, 12]` = **{step.pytorch:.4f}**" in texts(at)
    assert "75 products (3 channels × 5×5), added up" in texts(at) and at.success and "The same value" in at.success[0].value
    charts = {c.key: json.loads(c.proto.spec) for c in at.get("plotly_chart")}
    assert np.allclose(array(charts["cnn_conv_window"]["data"][0]["z"]), step.window[0].numpy(), atol=1e-6)
    outline = charts["cnn_conv_input"]["layout"]["shapes"][-1]
    assert (outline["x0"], outline["y0"], outline["x1"], outline["y1"]) == (11.5, 11.5, 16.5, 16.5)

    at.select_slider(key="cnn_conv1_col").set_value(20).run()
    at.select_slider(key="cnn_conv1_channel").set_value(4).run()
    step = shown("conv1", 4, 12, 20)
    assert f"= **{step.total:.4f}**" in texts(at) and "`self.conv1(x)[0, 4, 12, 20]`" in texts(at)

    at.radio(key="cnn_layer").set_value("conv2").run()
    at.select_slider(key="cnn_conv2_row").set_value(7).run()
    at.select_slider(key="cnn_conv2_in").set_value(5).run()
    step = shown("conv2", 0, 7, 3)
    assert f"= **{step.total:.4f}**" in texts(at) and "150 products (6 channels × 5×5), added up" in texts(at)
    assert "The same value" in at.success[0].value and not at.exception
    charts = {c.key: json.loads(c.proto.spec) for c in at.get("plotly_chart")}
    assert np.allclose(array(charts["cnn_conv_kernel"]["data"][0]["z"]), step.kernel[5].numpy(), atol=1e-6)

    # Every step of forward, in order, with its shape; the softmax with the model's class names, adding up to 100 %
    headings = [m.value for m in at.markdown if m.value.startswith("**") and ". " in m.value[:6]]
    assert [h.split("**")[1].split(". ", 1)[1] for h in headings] == STEPS
    assert "→ 1 × 16 × 5 × 5" in headings[5] and "→ 1 × 400" in headings[6] and "→ 1 × 10" in headings[12]
    softmax = charts["cnn_act_13"]["data"][0]
    assert list(softmax["y"]) == list(data.CIFAR10_CLASSES) and array(softmax["x"]).sum() == pytest.approx(100, abs=1e-3)


def test_a_filter_number_kept_from_wider_weights_is_brought_into_range():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.switch_page("pages/lesson_5_cnn.py")
    at.session_state["cnn_conv1_channel"] = 20  # as a WideNet (32 filters) left it; Net has 6
    at.run()
    assert not at.exception and at.select_slider(key="cnn_conv1_channel").value == 5
    assert "`self.conv1(x)[0, 5, 12, 12]`" in texts(at)
