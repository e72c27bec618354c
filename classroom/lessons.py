"""Lessons as data: parse lessons/NN_slug.md into prose, code blocks, widgets and questions; run the code blocks."""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib
import io
import random
import re
import threading
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from classroom import threads as cpu_threads

LESSONS_DIR = Path(__file__).resolve().parent.parent / "lessons"
FENCE = re.compile(r"^```(\S*)\s*(.*)$")
WIDGET = re.compile(r"^::: widget ([a-z_][a-z0-9_]*)\s*$")
OPTION = re.compile(r"^- \[([ xX])\] (.+)$")


# Lessons whose code reads names that the page sets up from what the server holds (lesson 7: where its data is):
# the module whose preamble() is that set-up where no page wrote one (tests, the notebook comparison).
SETUP = {"07_classifier": "classroom.tutorial"}

_running = threading.Lock()  # stdout capture, warning filters and torch's thread count are process-wide: one lesson at a time


class LessonError(ValueError):
    """A lesson file that does not follow the format; the message names the file and line."""


@dataclass(frozen=True)
class Prose:
    text: str  # markdown


@dataclass(frozen=True)
class Code:
    source: str
    runs: bool  # ```python runs; ```python norun is shown only (it needs something the classroom lacks offline)
    language: str = "python"
    note: str = ""  # the words after `norun`, shown as a caption


@dataclass(frozen=True)
class Widget:
    name: str  # the page supplies a function for each name


@dataclass(frozen=True)
class Option:
    text: str
    correct: bool
    why: str  # the explanation shown when this option is chosen


@dataclass(frozen=True)
class Question:
    prompt: str
    options: tuple[Option, ...]


Segment = Prose | Code | Widget | Question


@dataclass(frozen=True)
class Lesson:
    slug: str  # file name without .md, e.g. 02_tensors
    title: str
    segments: tuple[Segment, ...]

    @property
    def code_blocks(self) -> list[Code]:
        return [s for s in self.segments if isinstance(s, Code) and s.runs]

    @property
    def questions(self) -> list[Question]:
        return [s for s in self.segments if isinstance(s, Question)]

    @property
    def widgets(self) -> list[str]:
        return [s.name for s in self.segments if isinstance(s, Widget)]


@dataclass
class Output:
    """What one code block printed and drew, and how long it took."""

    stdout: str = ""
    figures: list[str] = field(default_factory=list)  # plotly figures as JSON
    images: list[bytes] = field(default_factory=list)  # PNG: the picture a block's last line evaluates to
    error: str = ""  # the traceback's last lines when the block raised
    seconds: float = 0.0


def lesson_files() -> list[Path]:
    """Every lesson file in order."""
    return sorted(LESSONS_DIR.glob("[0-9][0-9]_*.md"))


def path(slug: str, language: str = "en") -> Path:
    """The lesson's file: lessons/<slug>.md in English, lessons/<language>/<slug>.md in another language."""
    return (LESSONS_DIR if language == "en" else LESSONS_DIR / language) / f"{slug}.md"


def load(slug: str, language: str = "en") -> Lesson:
    """Parse lessons/<slug>.md (lessons/<language>/<slug>.md for another language)."""
    return parse(path(slug, language).read_text(encoding="utf-8"), slug)


def parse(text: str, slug: str = "lesson") -> Lesson:
    """Markdown with ```python blocks, `::: widget name` lines and `::: question` ... `:::` blocks."""
    lines = text.splitlines()
    segments: list[Segment] = []
    prose: list[str] = []
    title = ""
    i = 0

    def flush() -> None:
        body = "\n".join(prose).strip()
        if body:
            segments.append(Prose(body))
        prose.clear()

    while i < len(lines):
        line = lines[i]
        if not title and line.startswith("# "):
            title = line[2:].strip()
        elif fence := FENCE.match(line):
            flush()
            language, rest = fence.group(1) or "text", fence.group(2).strip()
            start, i = i, i + 1
            while i < len(lines) and lines[i].strip() != "```":
                i += 1
            if i == len(lines):
                raise LessonError(f"{slug}: the code block opened on line {start + 1} is never closed")
            source = "\n".join(lines[start + 1 : i])
            norun = rest.startswith("norun")
            note = rest[len("norun") :].strip() if norun else ""
            segments.append(Code(source, runs=language == "python" and not norun, language=language, note=note))
        elif widget := WIDGET.match(line):
            flush()
            segments.append(Widget(widget.group(1)))
        elif line.strip() == "::: question":
            flush()
            start, i = i, i + 1
            body = []
            while i < len(lines) and lines[i].strip() != ":::":
                body.append(lines[i])
                i += 1
            if i == len(lines):
                raise LessonError(f"{slug}: the question opened on line {start + 1} is never closed with :::")
            segments.append(_question(body, f"{slug} line {start + 1}"))
        else:
            prose.append(line)
        i += 1
    flush()
    if not title:
        raise LessonError(f"{slug}: a lesson starts with a '# Title' line")
    return Lesson(slug, title, tuple(segments))


def _question(body: list[str], where: str) -> Question:
    prompt: list[str] = []
    options: list[list] = []  # [text, correct, why lines]
    for line in body:
        if option := OPTION.match(line):
            options.append([option.group(2).strip(), option.group(1) != " ", []])
        elif options:
            options[-1][2].append(line.strip())
        else:
            prompt.append(line)
    made = tuple(Option(text, correct, " ".join(w for w in why if w)) for text, correct, why in options)
    if len(made) < 2:
        raise LessonError(f"{where}: a question needs at least two options (- [x] right / - [ ] wrong)")
    if sum(o.correct for o in made) != 1:
        raise LessonError(f"{where}: a question needs exactly one right option marked - [x]")
    if missing := [o.text for o in made if not o.why]:
        raise LessonError(f"{where}: option {missing[0]!r} has no explanation (indent it under the option)")
    if not "\n".join(prompt).strip():
        raise LessonError(f"{where}: the question has no text before its options")
    return Question("\n".join(prompt).strip(), made)


def run(lesson: Lesson, seed: int = 0, threads: int | None = 1) -> list[Output]:
    """Run the lesson's python blocks in order in one fresh namespace; one Output per block."""
    # Lesson blocks are tiny: one CPU thread runs them fastest, and on a machine shared by a class several threads
    # spin-waiting for busy cores make them many times slower. threads=None: the process default.
    with _running:
        return _run(lesson, seed, threads)


def _run(lesson: Lesson, seed: int, threads: int | None) -> list[Output]:
    namespace: dict = {"__name__": f"lesson_{lesson.slug}"}
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    with cpu_threads.using(threads):  # then the process default, never "what it was" (see classroom.threads)
        if lesson.slug in SETUP:
            exec(importlib.import_module(SETUP[lesson.slug]).preamble(), namespace)
        return [run_block(b.source, namespace, f"<{lesson.slug} block {n}>") for n, b in enumerate(lesson.code_blocks, 1)]


def run_block(source: str, namespace: dict, filename: str = "<lesson>", printed: io.StringIO | None = None) -> Output:
    """Execute one block, capturing what it prints, its warnings, any plotly figures it leaves behind, and the
    picture its last line evaluates to (a PIL image, which Jupyter would draw under the cell).

    printed: print() writes there as the block runs, through the namespace's own print rather than a process-wide
    capture (so the caller needs no lock for a long block); warnings are then left to the process."""
    before = {id(v) for v in namespace.values()}
    out, start = Output(), time.perf_counter()
    buffer = printed if printed is not None else io.StringIO()
    if printed is not None:
        namespace["print"] = functools.partial(print, file=printed)
    with _capture(buffer) if printed is None else contextlib.nullcontext([]) as caught:
        try:
            tree = ast.parse(source, filename)
            last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
            exec(compile(tree, filename, "exec"), namespace)  # lesson files ship with the app; nothing a browser sent
            if last is not None:
                _picture(eval(compile(ast.Expression(last.value), filename, "eval"), namespace), out)
        except Exception:
            out.error = "".join(traceback.format_exc(limit=-3)).strip()
    out.seconds = time.perf_counter() - start
    text = buffer.getvalue()
    for w in caught:
        text += f"{w.category.__name__}: {str(w.message).splitlines()[0]}\n"
    out.stdout = text
    for name, value in list(namespace.items()):
        if (
            id(value) not in before
            and type(value).__name__ == "Figure"
            and hasattr(value, "to_json")
            and not name.startswith("_")
        ):
            out.figures.append(value.to_json())
    return out


@contextlib.contextmanager
def _capture(buffer: io.StringIO):
    """stdout into buffer and every warning recorded, for the length of one block (process-wide: under _running)."""
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(buffer):
        warnings.simplefilter("always")
        yield caught


def _picture(value, out: Output) -> None:
    """A PIL image as PNG bytes in out.images; any other value is not shown (a page prints only what the code prints)."""
    from PIL import Image

    if isinstance(value, Image.Image):
        png = io.BytesIO()
        value.save(png, format="PNG")
        out.images.append(png.getvalue())
