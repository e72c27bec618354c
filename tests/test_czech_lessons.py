"""The Czech lessons (lessons/cs/NN_slug.md) against the English ones: the same lessons, the same structure, the same
program, the same output, and every Czech block runs.

The rule for code. A Czech block is the English block with its prose translated, nothing else:
- a non-Python block (bash, text) is identical once its `#` comments are removed;
- a Python block has the same syntax tree (comments are not part of one) once docstrings are blanked, each print(...)
  call is reduced to the names it reads and every other f-string to the expressions it formats: a print's wording and
  layout may change (Czech needs no `'s' * (n != 1)`, and no `12,d` whose comma reads as a decimal comma), the
  variables it prints may not. Every other string literal and every expression is identical;
- a block whose source is byte-identical prints byte-identical output; a block whose comments or printed wording were
  translated prints the same numbers in the same order (thousands separators aside).
Code is kept byte-identical wherever translating it would gain the student nothing; lesson 7 keeps every line the
tutorial prints (`Accuracy of the network on the ... test images`, `GroundTruth:`, ...), so students can compare.
"""

from __future__ import annotations

import ast
import functools
import inspect
import re

import pytest
import torch

from classroom import lessons, parallel, sandbox
from classroom.lessons import Code, Prose, Question, Widget
from classroom.models import Net
from tests.test_lessons import BLOCK_SECONDS

CS_DIR = lessons.LESSONS_DIR / "cs"
SLUGS = [p.stem for p in lessons.lesson_files()]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models on 2 busy cores: one thread avoids spin-waiting on cores other processes hold."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@functools.cache
def english(slug: str) -> lessons.Lesson:
    return lessons.load(slug)


@functools.cache
def czech(slug: str) -> lessons.Lesson:
    return lessons.parse((CS_DIR / f"{slug}.md").read_text(encoding="utf-8"), slug)


def test_every_lesson_exists_in_both_languages():
    ours = {p.stem for p in CS_DIR.glob("*.md")}
    assert len(SLUGS) == 8 and ours == set(SLUGS), f"only in English: {set(SLUGS) - ours}; only in Czech: {ours - set(SLUGS)}"


# --- structure ---------------------------------------------------------------------------------------------------


def shape(segment) -> tuple:
    """What must match between the languages: the kind, and for each kind what a page or a test relies on."""
    if isinstance(segment, Prose):
        return ("prose", tuple(len(h) for h in re.findall(r"^(#+) ", segment.text, re.M)))  # its headings, by level
    if isinstance(segment, Code):
        return ("code", segment.language, segment.runs, bool(segment.note))
    if isinstance(segment, Widget):
        return ("widget", segment.name)
    return ("question", tuple(o.correct for o in segment.options))  # the option count and which one is right


@pytest.mark.parametrize("slug", SLUGS)
def test_same_segments_widgets_and_questions(slug):
    en, cs = english(slug), czech(slug)
    assert cs.title  # "Autograd" is Czech too
    assert [shape(s) for s in cs.segments] == [shape(s) for s in en.segments]
    assert cs.widgets == en.widgets
    for e, c in zip(en.segments, cs.segments):
        if isinstance(e, Prose):
            assert c.text != e.text, f"{slug}: a section left in English:\n{e.text[:200]}"
        elif isinstance(e, Question):
            assert c.prompt != e.prompt and all(o.why for o in c.options)
        elif isinstance(e, Code) and e.note:
            assert c.note != e.note


# --- the same program ------------------------------------------------------------------------------------------


class _Normalise(ast.NodeTransformer):
    """The parts of a Python tree that the translation may not change (see the module's docstring)."""

    def visit_Call(self, node: ast.Call) -> ast.AST:
        if isinstance(node.func, ast.Name) and node.func.id == "print":
            read = [*node.args, *(k.value for k in node.keywords)]
            names = sorted({n.id for arg in read for n in ast.walk(arg) if isinstance(n, ast.Name)})
            keywords = [ast.keyword(k.arg, ast.Constant(None)) for k in node.keywords]
            return ast.Call(ast.Name("print", ast.Load()), [ast.Name(n, ast.Load()) for n in names], keywords)
        return self.generic_visit(node)

    def visit_JoinedStr(self, node: ast.JoinedStr) -> ast.AST:
        formatted = [v for v in node.values if isinstance(v, ast.FormattedValue)]
        for value in formatted:  # the expression and its format spec stay; the text around them may change
            value.value = self.visit(value.value)
        return ast.JoinedStr(formatted)

    def generic_visit(self, node: ast.AST) -> ast.AST:
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and body:
            first = body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                body[0] = ast.Expr(ast.Constant(""))  # a docstring
        return super().generic_visit(node)


def program(code: Code) -> str:
    if code.language != "python":
        lines = (re.sub(r"(^|\s+)#.*$", "", line).rstrip() for line in code.source.splitlines())
        return "\n".join(line for line in lines if line)
    return ast.dump(_Normalise().visit(ast.parse(code.source)))


def code_pairs(slug: str) -> list[tuple[Code, Code]]:
    pairs = [(e, c) for e, c in zip(english(slug).segments, czech(slug).segments) if isinstance(e, Code)]
    assert all(isinstance(c, Code) for _, c in pairs)
    return pairs


@pytest.mark.parametrize("slug", SLUGS)
def test_the_code_is_the_same_program(slug):
    for number, (e, c) in enumerate(code_pairs(slug), 1):
        assert program(c) == program(e), f"{slug} code block {number} is another program:\n{c.source}"
        if e.language == "python":
            # The Edit and run box is offered for the same blocks (its whitelist reads strings too).
            assert (sandbox.editable(c.source) is None) == (sandbox.editable(e.source) is None), f"{slug} block {number}"


def test_the_rule_catches_a_changed_program():
    def same(a: str, b: str) -> bool:
        return program(Code(a, True)) == program(Code(b, True))

    assert same('x = 1  # one\nprint(f"x is {x:.2f}", end=" ")', 'x = 1  # jedna\nprint(f"x je {x:.2f}", end=" ")')
    assert same('def f():\n    """Doc."""\n    return 1', 'def f():\n    """Dokumentace."""\n    return 1')
    assert not same("x = 1\nprint(x)", "x = 2\nprint(x)")
    assert not same("print(x)", "print(y)")
    assert not same('d = torch.device("cuda:0")', 'd = torch.device("cuda:1")')
    assert not same('s = f"{x:.2f}"', 's = f"{x:.3f}"')
    assert not same('print("a", end=" ")', 'print("a")')


# --- it runs, and prints the same -------------------------------------------------------------------------------


def numbers(text: str) -> list[str]:
    """Every number printed, in order; 62,006 and 62006 alike."""
    return re.findall(r"\d+(?:\.\d+)?(?:e[+-]?\d+)?", re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", text))


@pytest.mark.parametrize("slug", SLUGS)
def test_every_czech_block_runs_and_prints_what_the_english_one_prints(slug):
    en, cs = english(slug), czech(slug)
    en_out, cs_out = lessons.run(en), lessons.run(cs)
    assert len(cs_out) == len(cs.code_blocks) == len(en.code_blocks) >= 2
    for number, (e, c, eo, co) in enumerate(zip(en.code_blocks, cs.code_blocks, en_out, cs_out), 1):
        assert not co.error, f"{slug} Czech block {number} raised:\n{co.error}\n--- code ---\n{c.source}"
        assert not eo.error, f"{slug} English block {number} raised:\n{eo.error}"
        assert co.seconds < BLOCK_SECONDS.get(slug, 10), f"{slug} Czech block {number} took {co.seconds:.1f} s"
        assert (len(co.figures), len(co.images)) == (len(eo.figures), len(eo.images))
        if c.source == e.source:
            assert co.stdout == eo.stdout, f"{slug} block {number}: the same code printed something else"
        else:
            assert numbers(co.stdout) == numbers(eo.stdout), f"{slug} block {number}:\n{eo.stdout}\n---\n{co.stdout}"


# --- numbers in the prose ---------------------------------------------------------------------------------------


def czech_number(n: int) -> str:
    return f"{n:,}".replace(",", "\u00a0")  # 48 120: a non-breaking space groups thousands


def test_lesson_5_prose_gives_the_models_counts_in_czech_notation():
    text = (CS_DIR / "05_cnn.md").read_text(encoding="utf-8")
    counts = {name: sum(p.numel() for p in m.parameters()) for name, m in Net().named_children()}
    for n in (counts["fc1"], counts["conv2"], sum(counts.values())):
        assert czech_number(n) in text


def test_lesson_8_prose_matches_the_script():
    text = (CS_DIR / "08_parallel.md").read_text(encoding="utf-8")
    assert 'parser.add_argument("--global-batch", type=int, default=32' in parallel.SCRIPT
    assert "průměrná ztráta 32 vzorků je průměrem\ndvou průměrů po 16" in text
    timeout = inspect.signature(parallel.launch).parameters["timeout"].default
    assert f"po {timeout:g} sekundách" in text


@pytest.mark.parametrize("slug", SLUGS)
def test_czech_typography(slug):
    prose = "\n".join(s.text for s in czech(slug).segments if isinstance(s, Prose))
    prose += "\n".join(q.prompt + "".join(o.text + o.why for o in q.options) for q in czech(slug).questions)
    prose = re.sub(r"`[^`]*`", "", prose)  # code spans keep Python's notation
    assert not re.search(r"\d %", prose), "a non-breaking space before %"
    assert not re.search(r"\d\.\d", prose), "a decimal comma in Czech prose"
    assert not re.search(r"\d,\d{3}\b", prose), "thousands are grouped with a non-breaking space"
    assert '"' not in prose, "Czech quotes: „…“"


@pytest.mark.parametrize("slug", SLUGS)
def test_the_czech_lesson_makes_the_same_notebook_cells(slug):
    """The notebook generator reads the Czech text as it reads the English: the same cells, in the same order."""
    from classroom import notebooks

    text = (CS_DIR / f"{slug}.md").read_text(encoding="utf-8")
    cells = [(c.cell_type, c.metadata.get("classroom")) for c in notebooks.lesson_notebook(slug, text).cells]
    assert cells == [(c.cell_type, c.metadata.get("classroom")) for c in notebooks.lesson_notebook(slug).cells]
