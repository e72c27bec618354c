"""Lesson 7, the tutorial run on the page: which data it picks and says, that the fallback learns, that the code shown
is the code that ran (plain torch/torchvision), and the page drawn from the run, in AppTest and in Chromium."""

from __future__ import annotations

import ast
import builtins
import io
import pickle
import re
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from streamlit.testing.v1 import AppTest

from classroom import lessons, tutorial

ROOT = Path(__file__).resolve().parent.parent
TEXT = (lessons.LESSONS_DIR / f"{tutorial.SLUG}.md").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def fallback_run(tmp_path_factory):
    """The page's run on a server without CIFAR-10 or image folders: the one every test here looks at (made once)."""
    from ui import tutorial as page

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLASSROOM_DATA_DIR", str(tmp_path_factory.mktemp("empty-data")))
        mp.delenv("CLASSROOM_DATA_ROOTS", raising=False)
        page.source.clear()
        found = page.source()
        run = page.runs.get(found, TEXT)
        assert run.wait(timeout=240), "the tutorial's run did not end within 4 minutes"
        yield run
        page.source.clear()


def accuracy(run: tutorial.Run) -> tuple[int, dict[str, float]]:
    """(overall %, {class: %}) from the lines the run printed."""
    printed = "".join(o.stdout for o in run.outputs)
    overall = int(re.search(r"Accuracy of the network on the \d+ test images: (\d+) %", printed).group(1))
    per_class = {m[0]: float(m[1]) for m in re.findall(r"Accuracy for class: (\S+)\s+is\s+([\d.]+) %", printed)}
    return overall, per_class


# --- which data -------------------------------------------------------------------------------------------------


def test_without_cifar10_or_a_folder_the_page_falls_back_to_the_shapes_set_and_says_why(tmp_path):
    found = tutorial.find(tmp_path / "data", roots=[tmp_path / "data"])
    assert found.kind == "shapes" and found.synthetic and found.settings == tutorial.SYNTHETIC
    assert "fell back to the synthetic **shapes** set" in found.found and "CIFAR-10 is not downloaded" in found.found
    (tmp_path / "data" / "cifar-10-batches-py").mkdir(parents=True)
    (tmp_path / "data" / "cifar-10-batches-py" / "test_batch").write_bytes(b"cut off")
    damaged = tutorial.find(tmp_path / "data", roots=[tmp_path / "data"])
    assert damaged.kind == "shapes" and "CIFAR-10 is damaged" in damaged.found  # never trained on, never re-downloaded


def write_folder(root: Path, classes=("cat", "dog"), n: int = 3, size: int = 40) -> None:
    for split in ("train", "test"):
        for k, name in enumerate(classes):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                colour = (200 * k, 40 * i, 100)
                Image.new("RGB", (size, size), colour).save(root / split / name / f"{i}.png")


def test_an_image_folder_in_the_data_roots_is_used_when_cifar10_is_absent(tmp_path):
    write_folder(tmp_path / "roots" / "pets")
    (tmp_path / "roots" / "notes").mkdir()  # not an image folder: passed over
    found = tutorial.find(tmp_path / "data", roots=[tmp_path / "roots"])
    assert found.kind == "folder" and found.root == str((tmp_path / "roots" / "pets").resolve())
    assert "found the image folder" in found.found and "2 classes, 6 training and 6 test images" in found.found
    s = found.settings
    assert (s.batch_size, s.learning_rate, s.train_images, s.test_images) == (4, 0.001, 6, 6) and s.epochs >= 1


def test_the_folder_branch_runs_on_images_of_another_size(tmp_path):
    """A folder of 40x40 images of two classes: Resize makes them 32x32, and Net gets as many outputs as classes."""
    write_folder(tmp_path / "pets", size=40)
    found = tutorial.Source("folder", str(tmp_path / "pets"), "a test folder", tutorial.Settings(4, 0.001, 1, 6, 6))
    outputs = tutorial.execute(lessons.parse(TEXT, tutorial.SLUG), tutorial.preamble(found, str(tmp_path / "net.pth")))
    assert [o.error for o in outputs if o.error] == []
    printed = "".join(o.stdout for o in outputs)
    assert "6 training and 6 test images\n2 classes: cat, dog" in printed
    assert "(fc3): Linear(in_features=84, out_features=2," in printed  # one output per class of the folder


def test_the_cifar10_branch_reads_torchvisions_files(tmp_path, monkeypatch):
    """CIFAR-10 as torchvision saves it (a tiny stand-in: its md5s cannot match, so torchvision's check is waived)."""
    folder = tmp_path / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8), "labels": [i % 10 for i in range(20)]}
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": list(names)}))
    monkeypatch.setattr(tutorial, "_cifar10_state", lambda _: "intact")
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *a, **k: True)  # so no download either
    found = tutorial.find(tmp_path / "data", roots=[])
    assert found.kind == "cifar10" and found.settings == tutorial.REAL and "found CIFAR-10" in found.found
    small = tutorial.Source("cifar10", found.root, found.found, tutorial.Settings(4, 0.001, 1, 40, 20))
    outputs = tutorial.execute(lessons.parse(TEXT, tutorial.SLUG), tutorial.preamble(small, str(tmp_path / "net.pth")))
    assert [o.error for o in outputs if o.error] == []
    printed = "".join(o.stdout for o in outputs)
    assert "100 training and 20 test images\n10 classes: airplane, automobile, bird" in printed  # one set of names
    assert not re.search(r"\b(plane|car)\b", printed)  # not the tutorial's typed-in short names beside them


# --- the run on the fallback ---------------------------------------------------------------------------------------


def test_the_page_run_on_the_fallback_learns_every_class(fallback_run):
    run = fallback_run
    assert not run.failed and len(run.outputs) == len(run.lesson.code_blocks) >= 10
    overall, per_class = accuracy(run)
    assert overall >= 70, f"the tutorial's net learned only {overall} % of the synthetic set"
    assert len(per_class) == 10 and min(per_class.values()) > 20, per_class  # no class left at 0 %
    printed = "".join(o.stdout for o in run.outputs)
    assert "Finished Training" in printed and "<All keys matched successfully>" in printed
    losses = [float(v) for v in re.findall(r"\] loss: ([\d.]+)", printed)]
    assert len(losses) == 5 * tutorial.SYNTHETIC.epochs and losses[-1] < losses[0] / 2  # the loss printed as it falls
    assert "GroundTruth: " in printed and "Predicted: " in printed
    assert run.ended - run.started >= sum(o.seconds for o in run.outputs) > 0


def test_the_code_that_ran_is_plain_torch_and_is_the_lessons_own(fallback_run):
    code = tutorial.student_code(fallback_run)
    assert code[1:] == [b.source for b in lessons.parse(TEXT).code_blocks]
    defined, read = set(dir(builtins)), set()
    for piece in code:
        tree = ast.parse(piece)
        imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert imported <= {"os", "torch", "torchvision"}, imported  # no classroom helper, nothing beyond torchvision
        for node in ast.walk(tree):
            if isinstance(node, ast.Name):
                (read if isinstance(node.ctx, ast.Load) else defined).add(node.id)
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                defined.add(node.name)
            elif isinstance(node, ast.arg):
                defined.add(node.arg)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                defined |= {(a.asname or a.name).split(".")[0] for a in node.names}
    assert read - defined == set()  # every name the code reads, the code shown defines: it runs as copied
    setup = code[0]
    assert "CIFAR10 = False" in setup and f"DATA = {fallback_run.source.root!r}" in setup
    assert "batch_size = 16" in setup and "epochs = 3" in setup  # the synthetic set's settings, as run


def test_the_run_draws_the_tutorials_image_grids(fallback_run):
    pictures = [Image.open(io.BytesIO(png)) for o in fallback_run.outputs for png in o.images]
    assert len(pictures) == 2  # the training batch and the four test images
    for picture in pictures:
        assert picture.size == (4 * (4 * 34 + 2), 4 * 36)  # make_grid of four 32x32 images, padding 2, drawn 4x
        assert len(picture.getcolors(1 << 20)) > 50  # images, not a blank


def test_the_page_run_prints_what_lessons_run_and_so_the_notebook_print(fallback_run):
    """The page's own runner (no process-wide capture) and lessons.run (which the notebook test compares with) agree."""
    generic = lessons.run(lessons.load(tutorial.SLUG))
    assert [o.stdout for o in generic] == [o.stdout for o in fallback_run.outputs]


# --- the page -------------------------------------------------------------------------------------------------------


@pytest.fixture
def page_env(monkeypatch, fallback_run):
    """The page on that server: no runs in the lab, the same empty data folder."""
    from types import SimpleNamespace

    from ui import state
    from ui import tutorial as page

    manager = SimpleNamespace(list=lambda: [], checkpoint_path=lambda _: None, active_run=lambda _: None, loading=set)
    monkeypatch.setattr(state, "manager", lambda: manager)
    monkeypatch.setattr(page, "source", lambda: fallback_run.source)
    return fallback_run


def open_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page("pages/lesson_7_classifier.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_page_says_it_fell_back_and_shows_exactly_the_code_that_ran_with_its_output(page_env):
    run = page_env
    at = open_page()
    assert not at.error, [e.value for e in at.error]
    assert [w.value for w in at.warning] == [run.source.found]
    shown = [c.value for c in at.code]
    python = [c.value for c in at.code if c.language == "python"]
    assert python == tutorial.student_code(run)  # every piece of code that ran, in order, and nothing else
    for output in run.outputs:
        assert output.stdout.rstrip("\n") in shown
    assert len(at.get("image")) == 2
    captions = " ".join(c.value for c in at.caption)
    assert "This code ran once on this server" in captions and "of it training, measured" in captions
    if not torch.cuda.is_available():
        assert "This server has no CUDA GPU" in captions
    assert "Running now" not in captions
    assert at.button(key="to_lab") is not None and at.radio(key=f"{tutorial.SLUG}-q1") is not None


def test_page_shows_a_run_in_progress_block_by_block(page_env, monkeypatch):
    from ui import tutorial as page

    done = page_env
    going = tutorial.Run(done.source, TEXT)  # never started: frozen mid-way, three blocks done and the fourth printing
    going.started, going.preamble = time.time() - 5, done.preamble
    going.outputs = done.outputs[:3]
    going.current = (4, io.StringIO("CrossEntropyLoss()\n"))
    monkeypatch.setattr(page.runs, "get", lambda found, text: going)
    at = open_page()
    captions = [c.value for c in at.caption]
    assert any(c.startswith(":material/directions_run: Running on this server since") for c in captions)
    assert sum("Running now" in c for c in captions) == 1
    assert sum(c == "Runs when the blocks above have finished." for c in captions) == len(done.outputs) - 4
    assert "CrossEntropyLoss()" in [c.value for c in at.code]
    assert len(at.get("image")) == 1  # the training grid (block 2) is done; the test images (block 7) are not


# --- in the browser -------------------------------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.timeout(600)
def test_lesson_7_trains_in_the_browser_and_says_it_fell_back(browser, tmp_path):
    from tests.browser import screenshot, serve, wait_for_app

    env = {"CLASSROOM_RUNS_DIR": str(tmp_path / "runs"), "CLASSROOM_DATA_DIR": str(tmp_path / "data")}
    with serve(env) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        page.goto(url + "/lesson_7_classifier")
        wait_for_app(page, timeout=120_000, heading="Training a classifier")
        main = page.locator('[data-testid="stMain"]')
        main.get_by_text("fell back to the synthetic").wait_for(timeout=60_000)
        # the run goes on in the server; the page polls it and draws each block as it finishes
        main.get_by_text("This code ran once on this server").wait_for(timeout=300_000)
        wait_for_app(page, timeout=60_000)
        text = main.inner_text()
        assert "Finished Training" in text and "GroundTruth:" in text and "Predicted:" in text
        assert len(re.findall(r"Accuracy for class: \S+\s+is [\d.]+ %", text)) == 10  # printed, besides the code's f-string
        overall = int(re.search(r"Accuracy of the network on the \d+ test images: (\d+) %", text).group(1))
        assert overall >= 70
        assert "Running now" not in text and page.locator('[data-testid="stException"]').count() == 0
        images = main.locator('[data-testid="stImage"] img')
        assert images.count() == 2
        assert all(images.nth(i).evaluate("img => img.complete && img.naturalWidth") == 552 for i in range(2))
        height = page.evaluate("() => document.querySelector('[data-testid=\"stMainBlockContainer\"]').scrollHeight")
        page.set_viewport_size({"width": 1280, "height": height + 200})  # the whole lesson in one picture
        wait_for_app(page, timeout=60_000)
        screenshot(page, "lesson_7_classifier")
        page.close()
