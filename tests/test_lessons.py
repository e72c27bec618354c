"""Lessons as data: every python block of every lesson runs; the format holds; the lessons' engine helpers are right."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

from classroom import anatomy, calculus, data, dynamic, graphs, lessons, tensor_lab, timing
from classroom.models import Net, WideNet

SLUGS = [p.stem for p in lessons.lesson_files()]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models on 2 busy cores: one thread avoids spin-waiting on cores other processes hold."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_eight_lessons_in_order():
    assert SLUGS == ["01_why", "02_tensors", "03_autograd", "04_dynamic", "05_cnn", "06_devices", "07_classifier", "08_parallel"]


# Seconds a block may take on 2 busy cores: a page runs its blocks once per process, the first reader waits.
# Lesson 7 trains the tutorial's Net on the synthetic set (6-7 s); lesson 8 starts Python processes (torchrun, two
# workers, each importing torch): 11-19 s under load.
BLOCK_SECONDS = {"07_classifier": 30, "08_parallel": 60}


@pytest.mark.parametrize("slug", SLUGS)
def test_every_block_runs(slug):
    lesson = lessons.load(slug)
    outputs = lessons.run(lesson)
    assert len(outputs) == len(lesson.code_blocks) >= 2
    for number, (block, out) in enumerate(zip(lesson.code_blocks, outputs), 1):
        assert not out.error, f"{slug} block {number} raised:\n{out.error}\n--- code ---\n{block.source}"
        assert out.stdout.strip() or out.figures, f"{slug} block {number} shows nothing"
        assert out.seconds < BLOCK_SECONDS.get(slug, 10), f"{slug} block {number} took {out.seconds:.1f} s"


@pytest.mark.parametrize("slug", SLUGS)
def test_lesson_format(slug):
    lesson = lessons.load(slug)
    assert lesson.title
    assert 2 <= len(lesson.questions) <= 4
    for q in lesson.questions:
        assert sum(o.correct for o in q.options) == 1 and all(o.why for o in q.options)
    for block in (s for s in lesson.segments if isinstance(s, lessons.Code) and s.language == "python" and not s.runs):
        compile(block.source, slug, "exec")  # shown-only code must at least be valid Python
        assert block.note, "a block that is not run says why"


def test_blocks_share_one_namespace_per_lesson_and_errors_are_caught():
    lesson = lessons.parse("# T\n```python\nx = 21\n```\n```python\nprint(x * 2)\n```\n```python\n1 / 0\n```\n")
    out = lessons.run(lesson)
    assert out[1].stdout == "42\n"
    assert "ZeroDivisionError" in out[2].error
    again = lessons.run(lessons.parse("# T\n```python\nprint('x' in dir())\n```\n"))
    assert again[0].stdout == "False\n"  # a fresh namespace per lesson


def test_parser_reads_widgets_questions_and_refuses_bad_ones():
    text = "# T\nprose\n::: widget demo\n::: question\nWhat?\n- [x] yes\n  because\n- [ ] no\n  wrong\n:::\n"
    lesson = lessons.parse(text)
    assert lesson.widgets == ["demo"]
    (q,) = lesson.questions
    assert q.prompt == "What?" and [o.correct for o in q.options] == [True, False] and q.options[0].why == "because"
    with pytest.raises(lessons.LessonError, match="exactly one right"):
        lessons.parse("# T\n::: question\nWhat?\n- [ ] a\n  x\n- [ ] b\n  y\n:::\n")
    with pytest.raises(lessons.LessonError, match="no explanation"):
        lessons.parse("# T\n::: question\nWhat?\n- [x] a\n- [ ] b\n  y\n:::\n")
    with pytest.raises(lessons.LessonError, match="never closed"):
        lessons.parse("# T\n```python\nx = 1\n")


def test_numbers_in_lesson_5_prose_match_the_model():
    text = (lessons.LESSONS_DIR / "05_cnn.md").read_text()
    net = Net()
    counts = {name: sum(p.numel() for p in m.parameters()) for name, m in net.named_children()}
    total = sum(counts.values())
    assert f"{counts['fc1']:,}" in text and f"{counts['conv2']:,}" in text and f"{total:,}" in text


# --- graphs ---------------------------------------------------------------------------------------------------


def test_dot_names_the_operations_autograd_recorded():
    x = torch.tensor(2.0, requires_grad=True)
    w = torch.tensor(3.0, requires_grad=True)
    y = torch.sin(x * w) ** 2
    dot = graphs.to_dot(y, {"x": x, "w": w}, label="y")
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")
    for name in ("MulBackward0", "SinBackward0", "PowBackward0", "AccumulateGrad", "x scalar", "w scalar"):
        assert name in dot
    assert graphs.operations(y) == ["AccumulateGrad", "AccumulateGrad", "MulBackward0", "SinBackward0", "PowBackward0"]
    assert dot.count("->") == 5  # x, w -> mul -> sin -> pow -> output
    x2, w2 = torch.tensor(2.0, requires_grad=True), torch.tensor(3.0, requires_grad=True)  # a rerun: new tensors
    assert graphs.to_dot(torch.sin(x2 * w2) ** 2, {"x": x2, "w": w2}, label="y") == dot  # the same DOT: stable across reruns


def test_graph_of_a_constant_is_empty_and_of_net_has_its_layers():
    assert graphs.operations(torch.tensor(1.0)) == []
    out = Net()(torch.rand(1, 3, 32, 32)).sum()
    ops = graphs.operations(out)
    assert ops.count("AccumulateGrad") == 10  # 5 layers x (weight, bias)
    assert "ConvolutionBackward0" in ops and "MaxPool2DWithIndicesBackward0" in ops


def test_dynamic_graph_grows_with_the_loop_and_switches_branch():
    w = torch.tensor(1.5, requires_grad=True)
    big, small = torch.tensor([2.0, 3.0]), torch.tensor([0.1, -0.2])
    assert dynamic.loop_steps(big, w) < dynamic.loop_steps(small, w)
    ops_big, ops_small = graphs.operations(dynamic.grow_until_big(big, w)), graphs.operations(dynamic.grow_until_big(small, w))
    assert ops_small.count("MulBackward0") - ops_big.count("MulBackward0") == dynamic.loop_steps(small, w) - dynamic.loop_steps(
        big, w
    )
    assert "ReluBackward0" in ops_big and "TanhBackward0" in ops_small
    assert len(graphs.operations(dynamic.tanh_rnn(torch.ones(7), w))) > len(graphs.operations(dynamic.tanh_rnn(torch.ones(2), w)))


# --- calculus -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("label", list(calculus.FUNCTIONS))
def test_autograd_agrees_with_finite_differences(label):
    f = calculus.FUNCTIONS[label]
    for x0 in (f.low / 2, 0.3, f.high / 3):
        _, grad, y = calculus.gradient_at(f.fn, x0)
        assert grad == pytest.approx(calculus.finite_difference(f.fn, x0), abs=1e-6)
        assert y.grad_fn is not None
    xs, ys, dys = calculus.curve(f.fn, f.low, f.high, points=11)
    assert dys[3].item() == pytest.approx(calculus.gradient_at(f.fn, xs[3].item())[1], abs=1e-9)


def test_gradient_descent_converges_or_stops_when_it_diverges():
    square = calculus.FUNCTIONS["x²"].fn
    path = calculus.gradient_descent(square, 2.0, lr=0.1, steps=30)
    assert len(path) == 31 and abs(path[-1][0]) < 0.01 and path[1][0] == pytest.approx(2.0 - 0.1 * 4.0)
    wild = calculus.gradient_descent(calculus.FUNCTIONS["x³ − 3x"].fn, 2.0, lr=1.5, steps=30)
    assert len(wild) < 31 and not all(math.isfinite(v) and abs(v) < 1e6 for v in wild[-1])


# --- tensor playground ----------------------------------------------------------------------------------------


def test_playground_results_and_explained_errors():
    ok = tensor_lab.apply("a + b", (2, 1), (3,))
    assert ok.result.shape == (2, 3) and "Broadcasting" in ok.explanation and not ok.error
    bad = tensor_lab.apply("a + b", (2, 3), (4,))
    assert bad.result is None and "must match" in bad.error and "a has 3 and b has 4" in bad.explanation
    mm = tensor_lab.apply("a @ b", (2, 3), (2, 3))
    assert mm.result is None and "ends in 3" in mm.explanation and "offers 2" in mm.explanation
    assert torch.equal(tensor_lab.apply("a @ b", (2, 3), (3, 4)).result, mm.a @ torch.arange(1.0, 13).reshape(3, 4))
    assert "12 values" in tensor_lab.apply("a.reshape(b.shape)", (3, 4), (5,)).explanation
    assert "at dim 1" in tensor_lab.apply("torch.cat([a, b], dim=0)", (2, 3), (2, 4)).explanation
    assert tensor_lab.apply("a.sum(dim=0)", (2, 3, 4), (1,)).result.shape == (3, 4)


def test_shapes_are_parsed_strictly():
    assert tensor_lab.parse_shape(" 2, 3 ") == (2, 3) and tensor_lab.parse_shape("(4,)") == (4,)
    for bad in ("", "a, 2", "0", "2,2,2,2,2", "99", "-1"):
        with pytest.raises(ValueError):
            tensor_lab.parse_shape(bad)


def test_heatmap_slice_is_always_2d():
    for shape in ((), (4,), (2, 3), (2, 3, 4), (2, 2, 3, 4)):
        assert tensor_lab.heatmap_slice(torch.zeros(shape))[0].dim() == 2


# --- CNN anatomy ----------------------------------------------------------------------------------------------


def test_layer_by_layer_matches_the_forward_pass():
    net = Net().eval()
    image = data.make_shapes(n_train=0, n_test=1).test_x[0]
    x = anatomy.to_input(image)
    rows, maps = anatomy.layers(net, x)
    assert [r.out_shape for r in rows][:4] == [(1, 6, 28, 28), (1, 6, 28, 28), (1, 6, 14, 14), (1, 16, 10, 10)]
    assert rows[-1].out_shape == (1, 10) and sum(r.parameters for r in rows) == sum(p.numel() for p in net.parameters())
    assert maps["conv1"].shape == (6, 28, 28) and maps["conv2"].shape == (16, 10, 10)
    with torch.no_grad():  # the maps are the activations after conv+ReLU, as Net.forward computes them
        after_conv1 = torch.relu(net.conv1(x))
        assert torch.equal(maps["conv1"], after_conv1[0])
        assert torch.equal(maps["conv2"], torch.relu(net.conv2(net.pool(after_conv1)))[0])
    wide_rows, _ = anatomy.layers(WideNet().eval(), x)
    assert wide_rows[0].out_shape == (1, 32, 28, 28)


def test_filters_and_top_k():
    net = Net()
    pictures = anatomy.filters(net.conv1)
    assert pictures.shape == (6, 5, 5, 3)
    # each filter stretched to its own range: its lowest weight 0, its highest 1
    assert torch.equal(pictures.amin(dim=(1, 2, 3)), torch.zeros(6)) and torch.equal(pictures.amax(dim=(1, 2, 3)), torch.ones(6))
    image = data.make_shapes(n_train=0, n_test=1).test_x[0]
    top = anatomy.top_k(net, image, data.CIFAR10_CLASSES)
    assert len(top) == 3 and top[0][1] >= top[1][1] >= top[2][1] and all(c in data.CIFAR10_CLASSES for c, _ in top)
    assert sum(p for _, p in anatomy.top_k(net, image, data.CIFAR10_CLASSES, k=10)) == pytest.approx(1.0, abs=1e-5)


def _png(width: int = 64, height: int = 48) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), 200, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_upload_decodes_images_and_refuses_bad_files():
    assert anatomy.image_from_upload(_png(), "cat.png").shape == (3, 32, 32)
    for content, message in (
        (b"", "empty"),
        (b"#!/bin/sh\nrm -rf /\n", "not a readable image"),
        (_png()[:40], "not a readable image"),
        (b"\0" * (anatomy.MAX_UPLOAD_BYTES + 1), "MB"),
    ):
        with pytest.raises(data.DataError, match=message):
            anatomy.image_from_upload(content, "upload.bin")


def test_newest_checkpoint_picks_the_newest_finished_net(tmp_path):
    from types import SimpleNamespace

    from classroom.config import TrainConfig

    def run(id_, status, model):
        return SimpleNamespace(id=id_, status=status, config=TrainConfig(model=model))

    runs = [
        run("c", "running", "net"),
        run("b", "finished", "fast-cnn"),
        run("a", "finished", "wide-net"),
        run("z", "finished", "net"),
    ]
    paths = {"b": tmp_path / "b", "a": tmp_path / "a", "c": tmp_path / "c"}
    manager = SimpleNamespace(list=lambda: runs, checkpoint_path=lambda i: paths.get(i))
    found, path = anatomy.newest_checkpoint(manager)
    assert found.id == "a" and path == paths["a"]
    assert anatomy.newest_checkpoint(SimpleNamespace(list=lambda: runs[:2], checkpoint_path=lambda i: paths.get(i))) is None


# --- timing ---------------------------------------------------------------------------------------------------


def test_timing_measures_every_model_batch_and_device():
    rows = timing.measure(batch_sizes=(1, 8), budget=0.05)
    assert {(r.model, r.device, r.batch_size) for r in rows} == {
        (m, d, b) for m in ("Net", "WideNet") for d in timing.devices() for b in (1, 8)
    }
    assert all(r.seconds > 0 and r.images_per_second == pytest.approx(r.batch_size / r.seconds) for r in rows)
    assert {r.model: r.parameters for r in rows} == {"Net": 62006, "WideNet": sum(p.numel() for p in WideNet().parameters())}
    assert timing.speedup(rows, "Net", 8, "cpu") == pytest.approx(1.0)
    assert timing.speedup(rows, "Net", 8, "tpu") is None


def test_lessons_run_from_several_threads_keep_their_own_output():
    from concurrent.futures import ThreadPoolExecutor

    slugs = ["01_why", "02_tensors", "03_autograd", "04_dynamic"] * 2
    alone = {slug: [o.stdout for o in lessons.run(lessons.load(slug))] for slug in set(slugs)}
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda s: [o.stdout for o in lessons.run(lessons.load(s))], slugs))
    assert together == [alone[s] for s in slugs]
