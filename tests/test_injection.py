"""User-given text on the runs page stays text: a run's name, its data path and failure message, class names from an
image folder, and the ?run= parameter reach markdown escaped (ui.plain.md) and plotly with its HTML written as
entities (ui.plain.plot), so no viewer's browser shows an image, link, colour, icon or formula someone typed."""

from __future__ import annotations

import json
import re

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from classroom.config import TrainConfig
from classroom.runs import RunManager
from ui import plain, state

TIMEOUT = 60
NAME = "![x](http://127.0.0.1:9/t.png) :red[r] :material/home: $x$ <b>b</b>"
# Folder names hold no "/": these classes carry what they can (a relative image, directives, HTML, a web address).
CLASSES = ("![i](evil.png) <b>b", ":red[cat] :material_home: $x$", "www.evil.example :streamlit:")
MISSING = "gone ![y](evil.png) www.evil.example :streamlit: :red[r]"  # the failing run's folder
ASKED = "![q](http://127.0.0.1:9/q.png) :red[r]"  # a ?run= that is no run id
QUICK = TrainConfig(batch_size=8, lr=0.02, epochs=1, log_interval=1, max_steps=4, device="cpu", seed=0)
# What must never reach a markdown element outside a code span: each would be an image, colour, icon, formula,
# tag (escaped or not), web address (linked) or Streamlit logo.
ACTIVE = [
    "![",
    ":red[r]",
    ":red[cat]",
    ":material/home:",
    ":material_home:",
    "$x$",
    "<b>",
    "www.evil",
    ":streamlit:",
    "](http",
    "](evil",
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{kind: run id} of three runs an earlier server left on disk, and the folders: (ids, runs dir, data dir)."""
    root = tmp_path_factory.mktemp("injection")
    data_dir = root / "data"
    for split, count in (("train", 4), ("test", 3)):
        for i, name in enumerate(CLASSES):
            (data_dir / "imgs" / split / name).mkdir(parents=True)
            for k in range(count):
                Image.new("RGB", (32, 32), color=(80 * i, 40 * k, 200 - 60 * i)).save(
                    data_dir / "imgs" / split / name / f"{k}.png"
                )
    earlier = RunManager(root / "runs", data_roots=[data_dir])
    ids = {
        "named": earlier.submit(QUICK.replace(name=NAME, data="shapes", data_dir=str(data_dir))),
        "classes": earlier.submit(QUICK.replace(data=f"folder:{data_dir / 'imgs'}", data_dir=str(data_dir))),
        "failed": earlier.submit(QUICK.replace(data=f"folder:{data_dir / MISSING}", data_dir=str(data_dir))),
    }
    for kind, run_id in ids.items():
        snap = earlier.wait(run_id, timeout=120)
        assert snap.status == ("failed" if kind == "failed" else "finished"), (kind, snap.message)
    earlier.shutdown()
    return ids, root / "runs", data_dir


@pytest.fixture
def page(runs, monkeypatch):
    """runs_page(run): the runs page with ?run=run, on a fresh manager reading the runs above from disk."""
    ids, runs_dir, data_dir = runs
    monkeypatch.setenv("CLASSROOM_RUNS_DIR", str(runs_dir))
    monkeypatch.setenv("CLASSROOM_DATA_DIR", str(data_dir))
    monkeypatch.delenv("CLASSROOM_DATA_ROOTS", raising=False)
    monkeypatch.delenv("CLASSROOM_TOKEN", raising=False)
    state.manager.clear()

    def runs_page(run: str) -> AppTest:
        at = AppTest.from_file("../app.py", default_timeout=TIMEOUT)
        at.query_params["run"] = run
        at.switch_page("pages/runs.py").run()
        assert not at.exception
        return at

    yield runs_page
    state.manager().shutdown()
    state.manager.clear()


def bodies(at: AppTest) -> list[str]:
    """The markdown source of every element that renders markdown: text, captions, alerts, progress text."""
    kinds = ("markdown", "caption", "error", "warning", "info", "success")
    return [e.value for kind in kinds for e in at.get(kind)] + [e.proto.text for e in at.get("progress")]


def outside_code(markdown: str) -> str:
    """markdown with each code span (a backtick run up to the next run of the same length) cut out."""
    return re.sub(r"(?<!`)(`+)(?!`).*?(?<!`)\1(?!`)", "", markdown, flags=re.S)


def assert_inert(at: AppTest) -> None:
    for body in bodies(at):
        for active in ACTIVE:
            assert active not in outside_code(body), f"{active!r} is live in {body!r}"


def test_a_run_name_is_shown_escaped(runs, page):
    ids, _, _ = runs
    at = page(ids["named"])
    status = [m.value for m in at.markdown if ids["named"] in m.value]
    assert status and status[0].endswith(f" · *{plain.md(NAME)}*")
    assert_inert(at)


def test_a_failed_runs_message_and_data_path_are_shown_escaped(runs, page):
    ids, _, data_dir = runs
    at = page(ids["failed"])
    message = state.manager().get(ids["failed"]).message
    assert MISSING in message  # the data error names the folder as typed
    assert [e.value for e in at.error] == [plain.md(message)]
    status = next(m.value for m in at.markdown if ids["failed"] in m.value)
    assert f" on {plain.md(f'folder:{data_dir / MISSING}')} · " in status
    assert_inert(at)


def test_class_names_from_an_image_folder_are_shown_escaped(runs, page):
    ids, _, _ = runs
    at = page(ids["classes"])
    tiles = [m.value for m in at.markdown if "true: **" in m.value or m.value.startswith(":green[")]
    assert any(plain.md(c) in tile for tile in tiles for c in CLASSES), "the gallery names each image's class"
    assert_inert(at)
    figures = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    per_class = next(f for f in figures if f["layout"]["title"]["text"] == "Test accuracy per class")
    assert per_class["data"][0]["x"] == [plain.plot(c) for c in sorted(CLASSES)]
    labels = [v for f in figures for t in f["data"] for axis in "xy" for v in t.get(axis) or [] if isinstance(v, str)]
    assert labels and not any("<" in v for v in labels)  # plotly would draw <b> bold, <a href> as a link
    pairs = [s for s in at.selectbox if s.key == "runs-pair"]  # option labels are plain text: shown as typed
    assert not pairs or all(any(c in o for o in pairs[0].options) for c in CLASSES)


def test_a_link_with_a_hostile_run_parameter_is_answered_in_plain_text(runs, page):
    at = page(ASKED)
    assert [w.value for w in at.warning] == [
        f"The link asks for run {plain.md(repr(ASKED))}, which is not a run id. Pick one below."
    ]
    assert_inert(at)
