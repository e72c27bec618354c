"""AppTest: every lesson page renders without an exception, and its main widget does what it says."""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from classroom import checkpoints, lessons
from classroom.config import TrainConfig
from classroom.models import Net, build

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "pages").glob("lesson_*.py"))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def no_runs(monkeypatch, tmp_path):
    """An empty runs list and no CIFAR-10: lessons must work on a fresh, offline server."""
    from ui import state

    monkeypatch.setattr(state, "manager", lambda: fake_manager([], None))
    monkeypatch.setenv("CLASSROOM_DATA_DIR", str(tmp_path / "data"))


def fake_manager(runs: list, checkpoint) -> SimpleNamespace:
    """What the lessons and the sidebar ask of the RunManager: its runs, a checkpoint, this session's run."""
    return SimpleNamespace(list=lambda: runs, checkpoint_path=lambda _: checkpoint, active_run=lambda _: None, loading=set)


def slug(path: str) -> str:
    """pages/lesson_1_why.py -> 01_why, the lesson file it draws."""
    _, number, name = Path(path).stem.split("_", 2)
    return f"{int(number):02d}_{name}"


def page(path: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page(path).run()  # through app.py's router, as a browser gets it
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]  # a lesson block that raised shows st.error
    return at


def test_there_are_eight_lesson_pages():
    assert len(PAGES) == 8


@pytest.mark.parametrize("path", PAGES)
def test_page_renders_title_code_and_questions(path):
    at = page(path)
    assert len(at.title) == 1 and len(at.code) >= 4
    first = lessons.load(slug(path)).questions[0]
    right = next(o for o in first.options if o.correct)
    wrong = next(o for o in first.options if not o.correct)
    quiz = at.radio(key=f"{slug(path)}-q1")
    quiz.set_value(wrong.text)
    next(b for b in at.button if b.label == "Check").click().run()
    assert [e.value for e in at.error] == [f"Not quite: {wrong.why}"] and not any("Right" in m.value for m in at.success)
    at.radio(key=f"{slug(path)}-q1").set_value(right.text)
    next(b for b in at.button if b.label == "Check").click().run()
    assert f"Right: {right.why}" in [m.value for m in at.success] and not at.error
    assert "This lesson asks for a widget" not in " ".join(w.value for w in at.warning)


def test_lesson_1_batch_slider_changes_the_graphs():
    at = page("pages/lesson_1_why.py")
    assert len(at.dataframe[0].value) == 5
    at.slider(key="ragged_count").set_value(8).run()
    table = at.dataframe[0].value
    assert len(table) == 8 and (table["operations recorded"] > 0).all()
    assert table["operations recorded"].nunique() > 1  # different lengths, different graphs


def test_lesson_2_playground_explains_a_shape_error_and_the_bridge_shares_memory():
    at = page("pages/lesson_2_tensors.py")
    assert "(2, 3)" in at.success[0].value
    at.selectbox(key="play_op").set_value("a @ b").run()
    at.text_input(key="play_b").input("2, 4").run()
    assert "ends in 3" in at.warning[0].value and at.error[0].value.startswith("RuntimeError")
    at.text_input(key="play_b").input("seven").run()
    assert "not a whole number" in at.warning[0].value
    at.number_input(key="bridge_value").set_value(9.0).run()
    at.button(key="bridge_apply").click().run()
    rows = at.dataframe[-1].value
    assert list(rows["0"]) == [9.0, 9.0, 0.0]  # numpy and shared changed, the copy did not
    at.radio(key="bridge_via").set_value("the copied tensor").run()
    at.selectbox(key="bridge_index").set_value(1).run()
    at.button(key="bridge_apply").click().run()
    assert list(at.dataframe[-1].value["1"]) == [1.0, 1.0, 9.0]


def test_lesson_3_function_choice_drives_metrics_graph_and_descent():
    at = page("pages/lesson_3_autograd.py")
    at.selectbox(key="grad_fn_choice").set_value("sin(x)").run()
    at.slider(key="grad_x0").set_value(0.5).run()
    metrics = {m.label: m.value for m in at.metric}
    assert float(metrics["autograd f′(x₀)"]) == pytest.approx(np.cos(0.5), abs=1e-7)
    assert float(metrics["finite difference"]) == pytest.approx(np.cos(0.5), abs=1e-7)
    dot = at.get("graphviz_chart")[0].proto.spec
    assert "SinBackward0" in dot and "AccumulateGrad" in dot
    at.slider(key="gd_step").set_value(5).run()
    assert any(m.value.startswith("Step **5**") for m in at.markdown)


def test_lesson_4_two_inputs_give_two_graphs():
    at = page("pages/lesson_4_dynamic.py")
    charts = at.get("graphviz_chart")
    assert len(charts) == 2 and charts[0].proto.spec != charts[1].proto.spec
    at.slider(key="dyn_B").set_value(2.0).run()  # the same input on both sides: the same graph
    charts = at.get("graphviz_chart")
    assert charts[0].proto.spec.replace("(B)", "(A)") == charts[1].proto.spec.replace("(B)", "(A)")


def _png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (100, 80, 3), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_lesson_5_untrained_by_default_upload_and_refusals():
    at = page("pages/lesson_5_cnn.py")
    assert any("shapes" in c.value for c in at.caption)  # no CIFAR-10 here: it says which images it uses
    at.radio(key="cnn_weights").set_value("latest trained checkpoint").run()
    assert "No trained Net checkpoint" in at.warning[0].value
    at.radio(key="cnn_layer").set_value("conv2").run()
    assert any("16 maps of 10×10" in c.value for c in at.caption)
    at.file_uploader(key="cnn_upload").set_value(("photo.png", _png(), "image/png")).run()
    assert not at.error and "cnn_upload_top3" in [c.key for c in at.get("plotly_chart")]
    at.file_uploader(key="cnn_upload").set_value(("notes.txt", b"not an image", "text/plain")).run()
    assert "cannot be used" in at.error[0].value
    at.file_uploader(key="cnn_upload").set_value(("empty.png", b"", "image/png")).run()
    assert "empty" in at.error[0].value


def test_an_uploaded_file_name_never_becomes_a_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the server's working directory: nothing may appear in it or above it
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    at = page("pages/lesson_5_cnn.py")
    at.file_uploader(key="cnn_upload").set_value(("../evil.png", _png(), "image/png")).run()
    assert not at.exception and not at.error
    assert "cnn_upload_top3" in [c.key for c in at.get("plotly_chart")]  # decoded in memory and classified
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["work"]


def test_lesson_5_uses_the_latest_trained_checkpoint(monkeypatch, tmp_path):
    from ui import state

    torch.manual_seed(1)
    path = checkpoints.save(tmp_path / "checkpoint.pt", Net(), TrainConfig(), [f"k{i}" for i in range(10)], {})
    run = SimpleNamespace(
        id="20260101-000000-abcdef", status="finished", config=TrainConfig(), epochs=({}, {}), data_label="shapes (synthetic)"
    )
    monkeypatch.setattr(state, "manager", lambda: fake_manager([run], path))
    at = page("pages/lesson_5_cnn.py")
    at.radio(key="cnn_weights").set_value("latest trained checkpoint").run()
    assert any("20260101-000000-abcdef" in c.value for c in at.caption) and not at.warning


def test_lesson_6_times_once_for_the_class_and_remeasures_on_request(monkeypatch):
    from classroom import timing
    from ui import devices

    devices._class_measurement.clear()
    calls, real_measure = [], timing.measure
    monkeypatch.setattr(timing, "measure", lambda **kw: calls.append(kw) or real_measure(**kw))
    at = page("pages/lesson_6_devices.py")
    assert any("Net handles" in m.value for m in at.markdown) and any("Measured" in c.value for c in at.caption)
    at.run()
    page("pages/lesson_6_devices.py")  # a second student
    assert len(calls) == 1  # one measurement serves every session, however many reruns
    at.button(key="timing_again").click().run()
    assert len(calls) == 2 and {r.model for r in at.session_state["timings"][1]} == {"Net", "WideNet"}
    at.button(key="widen_time").click().run()
    assert at.session_state["widen_history"][0]["ms per step"] > 0


def test_lesson_7_button_sets_the_tutorial_preset_for_the_lab():
    at = page("pages/lesson_7_classifier.py")
    assert "lab_preset" not in at.session_state
    at.button(key="to_lab").click().run()
    assert at.session_state["lab_preset"] == "tutorial"


def test_timing_findings_are_built_from_the_numbers_and_flag_a_disturbed_measurement():
    from classroom.timing import Timing
    from ui.devices import findings

    rows = [
        Timing("Net", "cpu", 1, 0.002, 62006),
        Timing("Net", "cpu", 128, 0.016, 62006),
        Timing("WideNet", "cpu", 1, 0.001, 256830),  # faster than Net: only a busy machine explains that
        Timing("WideNet", "cpu", 128, 0.064, 256830),
        Timing("Net", "cuda", 1, 0.004, 62006),
        Timing("Net", "cuda", 128, 0.004, 62006),
        Timing("WideNet", "cuda", 128, 0.008, 256830),
    ]
    text = "\n".join(findings(rows))
    assert "Net handles 16.0× more images per second at batch size 128" in text  # (128 / 0.016) / (1 / 0.002)
    assert "takes 4.0× as long per step as Net" in text
    assert "Net at batch size 1: **cuda** is 0.5× as fast" in text and "WideNet at batch size 128: **cuda** is 8.0×" in text
    assert "disturbed" in text and "no GPU" not in text


def test_lesson_5_shows_an_image_of_the_data_set_the_checkpoint_trained_on(monkeypatch, tmp_path):
    """A net trained on an image folder is shown that folder's test images, with its own class names."""
    from PIL import Image

    from ui import state

    pets = tmp_path / "data" / "pets"  # inside the data dir: a folder the server may read
    for split in ("train", "test"):
        for name, colour in (("cat", (200, 40, 40)), ("dog", (40, 40, 200))):
            (pets / split / name).mkdir(parents=True)
            Image.new("RGB", (40, 30), colour).save(pets / split / name / "0.png")
    config = TrainConfig(data=f"folder:{pets}")
    path = checkpoints.save(tmp_path / "checkpoint.pt", build("net", 2), config, ["cat", "dog"], {})
    run = SimpleNamespace(id="20260101-000000-abcdef", status="finished", config=config, epochs=({},), data_label="pets")
    monkeypatch.setattr(state, "manager", lambda: fake_manager([run], path))
    at = page("pages/lesson_5_cnn.py")
    at.radio(key="cnn_weights").set_value("latest trained checkpoint").run()
    captions = " ".join(c.value for c in at.caption)
    assert "the image folder the net trained on" in captions and "CIFAR-10 is not downloaded" not in captions
    assert "true class: cat" in captions or "true class: dog" in captions  # the feature maps' caption names the image
    top3 = next(c for c in at.get("plotly_chart") if c.key == "cnn_top3")
    assert set(json.loads(top3.proto.spec)["data"][0]["y"]) == {"cat", "dog"}  # the model's own classes
