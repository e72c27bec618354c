"""Lesson 6's reference GPU figures: read from BENCHMARKS.md's table, shown beside the live CPU rate with their machine."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from streamlit.testing.v1 import AppTest

from classroom import timing
from classroom.timing import ReferenceFiguresError, Timing, live_estimate, reference_figures

ROOT = Path(__file__).resolve().parent.parent
# A live measurement stood in for: Net at 4 images in 2 ms per step (2,000 images/s), at 128 in 32 ms (4,000 images/s).
ROWS = [
    Timing(model, "cpu", batch, seconds, 62006)
    for model in ("Net", "WideNet")
    for batch, seconds in ((1, 0.001), (4, 0.002), (32, 0.01), (128, 0.032))
]


def test_benchmarks_md_holds_the_reporters_h200_figures():
    """The issue's figures (issue 13, item 9), as the lesson reads them from BENCHMARKS.md."""
    figures = reference_figures()
    assert (figures.machine, figures.torch) == ("one NVIDIA H200", "2.11")
    assert "2026-11" in figures.measured and "not yet re-measured" in figures.measured and "CIFAR-10" in figures.data
    got = {(r.model, r.batch_size, r.epochs, r.seconds, r.per_epoch, r.accuracy) for r in figures.runs}
    assert got == {
        ("net", 4, 2, (41.8, 41.8), True, None),  # the tutorial's own loop with .to(device)
        ("net", 4, 2, (20.2, 20.5), True, None),  # the tutorial preset
        ("net", 128, 2, (2.0, 2.0), False, 57.1),  # tutorial-fast
        ("fast-cnn", 256, 6, (6.1, 6.1), False, 87.27),
        ("fast-cnn", 1024, 10, (2.7, 2.7), False, 88.52),
    }


def without(text: str, old: str, new: str = "") -> str:
    assert old in text
    return text.replace(old, new)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda t: without(t, timing.START), "has no reference-figures section"),
        (lambda t: without(t, timing.END), "has no reference-figures section"),
        (lambda t: without(t, "- torch: 2.11\n"), "has no '- torch: ...' line"),
        (lambda t: without(t, "| seconds for |", "| time |"), "needs the columns run | model"),
        (lambda t: without(t, "(%) |\n|---|---|---|---|---|---|---|\n", "(%) |\n"), "needs the columns"),  # no separator row
        (lambda t: without(t, "| 20.2-20.5 |", "| twenty |"), "row 2: could not convert string to float"),
        (lambda t: without(t, "| 2.0 | the whole run |", "| 2.0 | per run |"), "row 3: 'seconds for' must be one of"),
        (lambda t: without(t, "| 6.1 |", "| 6.1 | 7 |"), "row 4 has 8 cells, not 7"),
    ],
)
def test_a_damaged_or_missing_table_is_refused_naming_what_is_wrong(tmp_path, damage, message):
    copy = tmp_path / "BENCHMARKS.md"
    copy.write_text(damage((ROOT / "BENCHMARKS.md").read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(ReferenceFiguresError, match=f"^BENCHMARKS.md.*{message}"):
        reference_figures(copy)


def test_a_missing_file_is_one_clear_error(tmp_path):
    with pytest.raises(ReferenceFiguresError, match="^BENCHMARKS.md cannot be read"):
        reference_figures(tmp_path / "BENCHMARKS.md")


def test_the_live_estimate_is_an_epoch_of_cifar10_at_the_timed_rate():
    runs = {(r.model, r.batch_size): r for r in reference_figures().runs}  # the last row of each kind
    tutorial, fast, cnn = runs["net", 4], runs["net", 128], runs["fast-cnn", 256]
    assert live_estimate(ROWS, tutorial) == pytest.approx(50_000 / 2_000)  # per epoch, as the figure is
    assert live_estimate(ROWS, fast) == pytest.approx(2 * 50_000 / 4_000)  # the whole run: both epochs
    assert live_estimate(ROWS, cnn) is None  # FastCNN is not timed live
    assert live_estimate([r for r in ROWS if r.batch_size != 128], fast) is None  # nor a batch size not measured


@pytest.fixture
def lesson_6(monkeypatch, tmp_path):
    """Lesson 6 through app.py on a CPU-only server, its live measurement stood in for by ROWS."""
    from ui import devices, state

    manager = SimpleNamespace(list=lambda: [], checkpoint_path=lambda _: None, active_run=lambda _: None, loading=set)
    monkeypatch.setattr(state, "manager", lambda: manager)
    monkeypatch.setenv("CLASSROOM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(timing, "devices", lambda: ["cpu"])
    monkeypatch.setattr(devices, "_class_measurement", state.ProcessWide(lambda: (time.time(), ROWS), ttl=600))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page("pages/lesson_6_devices.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_lesson_6_shows_the_h200_figures_labelled_beside_the_live_cpu(lesson_6):
    at = lesson_6
    text = "\n".join(m.value for m in at.markdown)
    assert "**Reference: one NVIDIA H200**, torch 2.11, measured 2026-11, by the reporter of issues 13 and 15" in text
    assert "not yet re-measured by this project" in text
    h200, cpu = "one NVIDIA H200 (reference)", "this server's cpu (1 thread), live estimate"
    (table,) = [d.value for d in at.dataframe if h200 in d.value.columns]
    shown = dict(zip(table["run"], zip(table["batch size"], table[h200], table[cpu], table["test accuracy (reference)"])))
    assert shown == {
        "the tutorial's own loop with its GPU section (.to(device))": (4, "41.8 s per epoch", "≈ 25 s per epoch", ""),
        "tutorial preset": (4, "20.2-20.5 s per epoch", "≈ 25 s per epoch", ""),
        "tutorial-fast preset, as it was then (Nesterov SGD, lr 0.1)": (
            128,
            "2.0 s for 2 epochs",
            "≈ 25 s for 2 epochs",
            "57.1 %",
        ),
        "fast-cnn preset": (256, "6.1 s for 6 epochs", "not timed here", "87.27 %"),
        "fast-cnn at batch 1024": (1024, "2.7 s for 10 epochs", "not timed here", "88.52 %"),
    }
    # Sentences built from the numbers: per batch size, the H200's fastest epoch against the CPU's estimate.
    assert "At batch size 4, one NVIDIA H200 took 20.2-20.5 s per epoch (`tutorial` preset); at the rate timed above this " \
        "server's cpu (1 thread) would need at least 25.0 s: **1.2×** the GPU's time." in text  # fmt: skip
    assert "At batch size 128, one NVIDIA H200 took 1.00 s per epoch (`tutorial-fast` preset, as it was then" in text
    assert "would need at least 12.5 s: **12.5×** the GPU's time." in text


def test_lesson_6_without_its_reference_table_says_so_in_one_line(lesson_6, monkeypatch):
    def gone():
        raise ReferenceFiguresError("BENCHMARKS.md has no reference-figures section")

    monkeypatch.setattr(timing, "reference_figures", gone)
    at = lesson_6.run()
    assert not at.exception
    assert [w.value for w in at.warning] == ["No reference figures to show: BENCHMARKS.md has no reference-figures section."]
