"""The app shell and the lab, through Streamlit's AppTest: pages render, the form explains bad input, a run finishes."""

from __future__ import annotations

import threading
import time

import pytest
from streamlit.testing.v1 import AppTest

import app
from classroom import data
from classroom.config import MAX_BATCH_SIZE, MAX_EPOCHS, TrainConfig
from tests.markdown import shown
from ui import download, state

TIMEOUT = 60


@pytest.fixture
def lab_env(tmp_path, monkeypatch):
    """A fresh RunManager on temporary runs/ and data/ folders; every run stopped afterwards."""
    monkeypatch.setenv("CLASSROOM_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("CLASSROOM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CLASSROOM_DATA_ROOTS", str(tmp_path))  # the image folders these tests make
    monkeypatch.delenv("CLASSROOM_TOKEN", raising=False)
    state.manager.clear()
    download.cifar10_download.clear()
    yield tmp_path
    state.manager().shutdown()
    state.manager.clear()


def open_lab() -> AppTest:
    at = AppTest.from_file("../app.py", default_timeout=TIMEOUT)
    at.switch_page("pages/lab.py").run()
    assert not at.exception
    return at


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def errors(at: AppTest) -> str:
    """The error messages as the page shows them (the user-given text in them is escaped markdown)."""
    return "\n".join(shown(e.value) for e in at.error)


def quick_run(at: AppTest, epochs: int = 1) -> None:
    """Turn the tutorial preset into a run of seconds on shapes."""
    at.number_input(key="lab.tutorial.epochs").set_value(epochs)
    at.number_input(key="lab.tutorial.batch_size").set_value(64)
    at.number_input(key="lab.tutorial.lr").set_value(0.02)
    at.number_input(key="lab.tutorial.max_steps").set_value(40)
    at.number_input(key="lab.tutorial.log_interval").set_value(10)
    at.run()


def test_every_page_renders_and_the_app_starts_on_lesson_one(lab_env):
    at = AppTest.from_file("../app.py", default_timeout=TIMEOUT).run()
    assert not at.exception
    assert "CPU" in "".join(c.value for c in at.sidebar.caption)  # the frame: the device in use
    for path, _, _ in app.LESSONS + [("pages/lab.py", "", ""), ("pages/runs.py", "", "")]:
        at.switch_page(path).run()
        assert not at.exception, f"{path}: {at.exception}"
        assert at.title, f"{path} drew no title"


def test_without_cifar10_the_lab_preselects_shapes_and_explains_the_download(lab_env):
    at = open_lab()
    assert at.radio(key="lab.source").value == "shapes"
    assert button(at, "Start training").disabled is False
    at.radio(key="lab.source").set_value("cifar10").run()
    assert "CIFAR-10 is not downloaded yet" in errors(at)
    assert any("Download it once" in i.value for i in at.info)
    assert button(at, "Start training").disabled is True


def test_a_failed_download_says_why_and_offers_the_other_sources(lab_env, monkeypatch):
    def offline(data_dir, progress=None):
        progress(10, 100)
        raise data.DataError("could not download CIFAR-10 (no network)")

    monkeypatch.setattr(data, "download_cifar10", offline)
    at = open_lab()
    at.radio(key="lab.source").set_value("cifar10").run()
    button(at, "Download CIFAR-10").click().run()
    download.cifar10_download().thread.join(5)
    at.run()
    assert "The download failed: could not download CIFAR-10 (no network)" in errors(at)
    assert "shapes or an image folder" in errors(at)


def test_the_form_explains_invalid_settings_before_start(lab_env, tmp_path):
    at = open_lab()
    at.number_input(key="lab.tutorial.lr").set_value(0.0).run()
    assert "lr: must be above 0" in errors(at)
    assert button(at, "Start training").disabled is True
    at.number_input(key="lab.tutorial.lr").set_value(0.01)
    at.radio(key="lab.source").set_value("folder").run()
    assert "type the path of an image folder" in errors(at)
    at.text_input(key="lab.folder").input(str(tmp_path / "nowhere")).run()
    assert "is not a folder" in errors(at) and button(at, "Start training").disabled is True
    at.radio(key="lab.source").set_value("shapes").run()
    assert not at.error and button(at, "Start training").disabled is False


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("lr", 10.5, "lr: must be above 0.0 and at most 10.0"),
        ("lr", -1.0, "lr: must be above 0.0"),
        ("momentum", 1.0, "momentum: must be at least 0.0 and at most 0.9999"),
        ("momentum", -0.5, "momentum:"),
        ("warmup", 1.5, "warmup:"),
        ("wd", 2.0, "weight_decay:"),
        ("ls", 0.6, "label_smoothing:"),
    ],
)
def test_a_field_past_its_limit_is_explained_and_blocks_start(lab_env, field, value, message):
    """The fields with no hard bounds in the widget: the page names the field and what it accepts."""
    at = open_lab()
    at.number_input(key=f"lab.tutorial.{field}").set_value(value).run()
    assert not at.exception and message in errors(at)
    assert button(at, "Start training").disabled is True


@pytest.mark.parametrize("end", ["low", "high"])
def test_every_bounded_field_accepts_its_limits(lab_env, end):
    """The widgets with bounds refuse anything past them in the browser; at the bounds the run may start."""
    limits = {
        "epochs": (1, MAX_EPOCHS), "batch_size": (1, MAX_BATCH_SIZE), "seed": (0, 2**32 - 1),
        "log_interval": (1, 10**6), "max_steps": (0, 10**6), "lr": (1e-4, 10.0), "momentum": (0.0, 0.9999),
        "warmup": (0.0, 1.0), "wd": (0.0, 1.0), "ls": (0.0, 0.5),
    }  # fmt: skip
    at = open_lab()
    for field, bounds in limits.items():
        at.number_input(key=f"lab.tutorial.{field}").set_value(bounds[end == "high"])
    at.text_input(key="lab.tutorial.name").input("x" * 60)
    at.run()
    assert not at.exception and not at.error
    assert button(at, "Start training").disabled is False


@pytest.mark.parametrize("folder", ["../../etc", "/dev/null", "a\x00b", " ", "~/" + "deep/" * 200])
def test_a_garbage_folder_path_is_explained(lab_env, folder):
    at = open_lab()
    at.radio(key="lab.source").set_value("folder").run()
    at.text_input(key="lab.folder").input(folder).run()
    assert not at.exception and "data:" in errors(at)
    assert button(at, "Start training").disabled is True


def test_garbage_url_parameters_change_nothing(lab_env):
    garbage = {"run": "../../etc/passwd", "token": "' OR 1=1", "page": "<script>alert(1)</script>", "x": "\x00" * 3}
    for path in [p for p, _, _ in app.LESSONS] + ["pages/lab.py", "pages/runs.py"]:
        at = AppTest.from_file("../app.py", default_timeout=TIMEOUT)
        at.query_params.update(garbage)
        at.switch_page(path).run()
        assert not at.exception, (path, [e.value for e in at.exception])


def test_a_lesson_can_preselect_a_preset(lab_env):
    at = AppTest.from_file("../app.py", default_timeout=TIMEOUT)
    at.session_state["lab_preset"] = "fast-cnn"
    at.switch_page("pages/lab.py").run()
    assert at.selectbox(key="lab.preset").value == "fast-cnn"
    assert at.selectbox(key="lab.fast-cnn.model").value == "fast-cnn"
    assert at.number_input(key="lab.fast-cnn.batch_size").value == 256


def test_show_the_code_follows_the_form(lab_env):
    at = open_lab()
    at.number_input(key="lab.tutorial.batch_size").set_value(32).run()
    script = next(c.value for c in at.code if "def main()" in c.value)
    assert 'parser.add_argument("--batch-size", type=int, default=32)' in script
    assert at.download_button[0].label == "Download the script"


def test_a_run_on_shapes_started_from_the_page_finishes_and_its_results_render(lab_env):
    at = open_lab()
    quick_run(at)
    button(at, "Start training").click().run()
    assert not at.exception and not at.error
    run_id = at.session_state["lab_run"]
    assert button(at, "Start training").disabled is True  # one run at a time per session
    snap = state.manager().wait(run_id, timeout=120)
    assert snap.status == "finished", snap.message
    at.run()
    assert not at.exception
    headings = [h.value for h in at.subheader]
    assert "Test results after epoch 1" in headings and "Sample test images" in headings
    lines = next(c.value for c in at.code if c.value.startswith("Accuracy of the network"))
    assert "Accuracy for class: circle" in lines and len(lines.splitlines()) == 11
    assert len(at.get("plotly_chart")) == 4  # loss, accuracy per epoch, per class, confusion
    assert len(at.get("image")) >= 16  # the gallery and the misclassified examples
    assert any(d.label == "Download the trained checkpoint" for d in at.download_button)
    assert any("Test accuracy" in m.label for m in at.metric)

    # The checkpoint it saved evaluates when uploaded; garbage is refused with a message.
    checkpoint = state.manager().checkpoint_path(run_id).read_bytes()
    at.file_uploader(key="lab.upload").upload("net.pt", checkpoint).run()
    assert not at.exception
    assert any(c.value.startswith("Accuracy of the network on the 2000 test images") for c in at.code)
    at.file_uploader(key="lab.upload").set_value(("junk.pt", b"not a checkpoint", "application/octet-stream")).run()
    assert "is not a readable PyTorch checkpoint" in errors(at)


def test_the_live_view_shows_progress_and_stop_works(lab_env):
    at = open_lab()
    quick_run(at, epochs=50)
    button(at, "Start training").click().run()
    run_id = at.session_state["lab_run"]
    deadline = time.monotonic() + TIMEOUT
    while not state.manager().get(run_id).last_batch:
        assert time.monotonic() < deadline, "no batch reported within the timeout"
        time.sleep(0.1)
    at.run()
    assert any("images/s" in (p.text or "") for p in at.get("progress") if hasattr(p, "text"))
    button(at, "Stop").click().run()
    assert state.manager().wait(run_id, timeout=TIMEOUT).status == "stopped"
    at.run()
    assert not at.exception and button(at, "Start training").disabled is False


def test_a_featured_run_is_shown_to_every_session(lab_env):
    mgr = state.manager()
    config = TrainConfig(data="shapes", batch_size=64, lr=0.02, epochs=1, max_steps=20, log_interval=5, device="cpu")
    featured = mgr.submit(config)
    mgr.wait(featured, timeout=120)
    mgr.feature(featured)
    at = open_lab()  # a different session from the one that started it
    assert any("Featured run" in h.value for h in at.subheader)
    assert any(featured in m.value for m in at.markdown)
    mgr.feature(None)
    at.run()
    assert not any("Featured run" in h.value for h in at.subheader)


def test_the_sidebar_says_a_data_set_is_loading_while_a_run_decodes_it(lab_env, monkeypatch):
    from PIL import Image

    pics = lab_env / "pics"  # a set no earlier test has loaded (inside the allowed roots)
    for split in ("train", "test"):
        for name in ("a", "b"):
            (pics / split / name).mkdir(parents=True)
            Image.new("RGB", (32, 32), (200, 40, 40) if name == "a" else (40, 40, 200)).save(pics / split / name / "0.png")
    release, real_load = threading.Event(), data.load
    monkeypatch.setattr(data, "load", lambda *a, **k: release.wait(TIMEOUT) and real_load(*a, **k))
    run_id = state.manager().submit(TrainConfig(data=f"folder:{pics}", epochs=1, max_steps=2, batch_size=2, device="cpu"))
    deadline = time.monotonic() + TIMEOUT
    while state.manager().get(run_id).status != "loading":
        assert time.monotonic() < deadline, "the run never started loading"
        time.sleep(0.02)
    try:
        at = open_lab()
        assert any(f"folder:{pics} (loading…)" in shown(c.value) for c in at.sidebar.caption)
    finally:
        release.set()
    assert state.manager().wait(run_id, timeout=TIMEOUT).status == "finished"
