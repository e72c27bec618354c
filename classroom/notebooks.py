"""Jupyter notebooks of a lesson and of a lab run (.ipynb, built with nbformat), runnable top to bottom outside the app.

A notebook needs only `pip install torch torchvision` (numpy comes with torchvision): what a lesson block imports from
the app's own `classroom` package is copied into the notebook, with whatever that code needs in turn, and a run's
notebook is the generated standalone script (classroom.script) cut into its steps. tests/test_notebooks.py executes
every lesson's notebook and each preset's run notebook with nbclient.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import inspect
import re
import sys
import textwrap
from dataclasses import dataclass, field

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from classroom import lessons, locale, models, script
from classroom.config import TrainConfig
from classroom.lessons import Code, Lesson, Prose, Question, Widget

APP = "Torch Classroom"
MIME = "application/x-ipynb+json"
PACKAGE = "classroom"  # the app's engine: a notebook never imports it
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


class NotebookError(ValueError):
    """Lesson code the notebook cannot make independent of the app (an import form it does not handle)."""


def to_bytes(notebook: nbformat.NotebookNode) -> bytes:
    """The .ipynb file's contents."""
    return nbformat.writes(notebook).encode("utf-8")


def _notebook(cells: list) -> nbformat.NotebookNode:
    for number, cell in enumerate(cells, 1):
        cell.id = f"cell-{number}"  # stable: the same lesson or run gives the same file
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def _md_escape(text: str) -> str:
    """User-given text (a run name, a folder path) shown literally on one markdown line (a title, a table cell)."""
    text = " ".join(str(text).split())
    text = re.sub(r"([\\`*_\[\]|<>~$&])", r"\\\1", text)  # emphasis, code, links, tables, HTML, math
    text = re.sub(r"^([#+=-])", r"\\\1", text)  # not a heading or a list item at the start of a line
    return re.sub(r"^(\d+)([.)])", r"\1\\\2", text)  # nor a numbered one


# --- copying the app's helpers into a notebook ----------------------------------------------------------------


@dataclass
class _Module:
    """One classroom module's top level: each definition's text and node, and what each import line binds."""

    name: str
    definitions: dict[str, tuple[int, str, ast.AST]] = field(default_factory=dict)  # name -> (position, text, node)
    imports: dict[str, tuple[str, str, str | None]] = field(default_factory=dict)  # bound name -> (module, attr, as)


@functools.lru_cache(maxsize=32)
def _module(name: str) -> _Module:
    source = inspect.getsource(importlib.import_module(name))
    lines = source.splitlines()
    found = _Module(name)
    for position, node in enumerate(ast.parse(source).body):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            start = min([d.lineno for d in node.decorator_list] + [node.lineno])
            found.definitions[node.name] = (position, "\n".join(lines[start - 1 : node.end_lineno]), node)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            text = "\n".join(lines[node.lineno - 1 : node.end_lineno])  # whole lines: the comment after the value too
            for target in targets:
                for name_node in ast.walk(target):
                    if isinstance(name_node, ast.Name):
                        found.definitions[name_node.id] = (position, text, node)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                bound = alias.asname or alias.name.split(".")[0]
                found.imports[bound] = (alias.name if alias.asname else alias.name.split(".")[0], "", None)
                if alias.asname:
                    found.imports[bound] = (alias.name, "", alias.asname)
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            module = "." * node.level + (node.module or "")
            for alias in node.names:
                found.imports[alias.asname or alias.name] = (module, alias.name, alias.asname)
    return found


def _import_line(module: str, attr: str, asname: str | None) -> str:
    if attr:
        return f"from {module} import {attr}" + (f" as {asname}" if asname else "")
    return f"import {module}" + (f" as {asname}" if asname else "")


def _in_package(module: str) -> bool:
    return module == PACKAGE or module.startswith(PACKAGE + ".")


class Inliner:
    """Copies classroom definitions into a notebook, each with what it needs (definitions, imports), each once."""

    def __init__(self) -> None:
        self.defined: dict[str, str] = {}  # notebook name -> "module.name" whose code defines it
        self.imported: set[str] = set()  # import lines already in the notebook's copied code

    def cells(self, wanted: list[tuple[str, str]], stand_ins: dict[str, str] | None = None) -> list[str]:
        """Code for (module, name) pairs not yet defined: one cell's source per classroom module, dependencies first.

        stand_ins: {module: `alias = SimpleNamespace(...)` code} ending that module's cell."""
        stand_ins = stand_ins or {}
        order: list[tuple[str, str]] = []  # (module, name) in the order they must be defined
        imports: dict[str, list[str]] = {}  # module -> the import lines its copied code needs
        seen: set[tuple[str, str]] = set()

        def need(module: str, name: str) -> None:
            if (module, name) in seen:
                return
            seen.add((module, name))
            index = _module(module)
            if name not in index.definitions:
                if name in index.imports and _in_package(index.imports[name][0]) and index.imports[name][1]:
                    need(index.imports[name][0], index.imports[name][1])  # a helper importing another helper
                    return
                raise NotebookError(f"{module}.{name} is not a top-level definition the notebook can copy")
            _, _, node = index.definitions[name]
            for ref in sorted({n.id for n in ast.walk(node) if isinstance(n, ast.Name)} - {name}):
                if ref in index.definitions:
                    need(module, ref)
                elif ref in index.imports:
                    source, attr, asname = index.imports[ref]
                    if _in_package(source):
                        if not attr:
                            raise NotebookError(f"{module}.{name} uses the module {source}: copy what it uses instead")
                        need(source, attr)
                    else:
                        imports.setdefault(module, []).append(_import_line(source, attr, asname))
            order.append((module, name))

        for module, name in wanted:
            need(module, name)
        for module in stand_ins:
            imports.setdefault(module, []).append("from types import SimpleNamespace")
        cells = []
        for module in dict.fromkeys([m for m, _ in order] + list(stand_ins)):
            index = _module(module)
            texts: dict[str, int] = {}  # text -> its place in the module; one statement may define several names
            names: dict[str, int] = {}  # the public names this cell defines, in the module's order
            for mod, name in order:
                if mod != module or self.defined.get(name) == f"{mod}.{name}":
                    continue
                if name in self.defined:
                    raise NotebookError(f"{mod}.{name} and {self.defined[name]} would share one name in the notebook")
                self.defined[name] = f"{mod}.{name}"
                position, text, _ = index.definitions[name]
                texts.setdefault(text, position)
                if not name.startswith("_"):
                    names[name] = position
            if not texts and module not in stand_ins:
                continue
            lines = sorted(set(imports.get(module, [])) - self.imported, key=_import_order)
            self.imported.update(lines)
            path = module.replace(".", "/") + ".py"
            listed = ", ".join(sorted(names, key=names.get))
            parts = [f"# Copied from the app's {path}" + (f": {listed}" if listed else "") + "\n" + "\n".join(lines)]
            parts += [text for text, _ in sorted(texts.items(), key=lambda item: item[1])]
            if module in stand_ins:
                parts.append(stand_ins[module])
            cells.append("\n\n\n".join(p.strip("\n") for p in parts if p.strip()))
        return cells


def _import_order(line: str) -> tuple[int, str]:
    """stdlib imports first, then the rest, as isort would group them."""
    top = line.split()[1].split(".")[0]
    return (0 if top in sys.stdlib_module_names else 1, line.replace("from ", "import ", 1))


# --- lessons -----------------------------------------------------------------------------------------------


def _package_imports(tree: ast.Module) -> list[ast.stmt]:
    """The block's top-level statements that import from classroom; NotebookError for one nested deeper."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and _in_package(node.module):
            pass
        elif isinstance(node, ast.Import) and any(_in_package(a.name) for a in node.names):
            raise NotebookError(f"`import {node.names[0].name}`: write `from classroom... import name` in a lesson block")
        else:
            continue
        if node not in tree.body:
            raise NotebookError(f"line {node.lineno}: a classroom import inside a function or block cannot be copied")
        found.append(node)
    return found


def _prints_source_of(node: ast.stmt) -> str | None:
    """NAME when the statement is `print(inspect.getsource(NAME))`."""
    if (
        isinstance(node, ast.Expr)
        and isinstance(call := node.value, ast.Call)
        and isinstance(call.func, ast.Name)
        and call.func.id == "print"
        and len(call.args) == 1
        and isinstance(inner := call.args[0], ast.Call)
        and isinstance(inner.func, ast.Attribute)
        and inner.func.attr == "getsource"
        and isinstance(inner.func.value, ast.Name)
        and inner.func.value.id == "inspect"
        and len(inner.args) == 1
        and isinstance(inner.args[0], ast.Name)
    ):
        return inner.args[0].id
    return None


def _attributes_used(blocks: list[Code], alias: str) -> list[str]:
    """Every `alias.attr` the lesson's blocks use, in order of first use."""
    used = []
    for block in blocks:
        for node in ast.walk(ast.parse(block.source)):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == alias:
                used.append(node.attr)
    return list(dict.fromkeys(used))


def _replace_lines(source: str, spans: list[tuple[int, int, str]]) -> str:
    """source with lines start..end (1-based, inclusive) of each span replaced by its text."""
    lines = source.splitlines()
    for start, end, text in sorted(spans, reverse=True):
        indent = re.match(r"\s*", lines[start - 1]).group(0)
        lines[start - 1 : end] = [indent + t for t in text.splitlines()]
    return "\n".join(lines)


def _widget_note(name: str, lesson: Lesson, _=str) -> str:
    """The note in place of a widget; _: the notebook language's gettext."""
    note = _(
        "> **Interactive in the app:** here the lesson page has the *{widget}* widget. Open lesson {number}, "
        "*{title}*, in {app} to use it; a notebook keeps only the code."
    )
    return note.format(widget=name.replace("_", " "), number=int(lesson.slug[:2]), title=lesson.title, app=APP)


def _question_cell(q: Question, number: int, _=str) -> str:
    """A check question with its answer folded away; _: the notebook language's gettext."""
    letters = "ABCDEFGHIJ"
    right = next(i for i, o in enumerate(q.options) if o.correct)
    lines = [_("**Check yourself {number}.** {prompt}").format(number=number, prompt=q.prompt), ""]
    lines += [f"- **{letters[i]}.** {o.text}" for i, o in enumerate(q.options)]
    lines += ["", "<details><summary>" + _("Show the answer") + "</summary>", ""]
    lines += [_("**{letter}** is right: {why}").format(letter=letters[right], why=q.options[right].why), ""]
    lines += [_("Why each answer is right or wrong:"), ""]
    for i, o in enumerate(q.options):
        mark = _("- **{letter}** (right): {why}") if o.correct else _("- **{letter}** (wrong): {why}")
        lines.append(mark.format(letter=letters[i], why=o.why))
    lines += ["", "</details>"]
    return "\n".join(lines)


def _third_party(blocks: list[Code]) -> list[str]:
    """Top-level modules the lesson's code imports beyond the standard library, torch, numpy and classroom."""
    found = []
    for block in blocks:
        for node in ast.walk(ast.parse(block.source)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("torch", "torchvision", "numpy", PACKAGE):
                    found.append(top)
    return list(dict.fromkeys(found))


def lesson_notebook(slug: str, text: str | None = None, language: str = "en") -> nbformat.NotebookNode:
    """lessons/<slug>.md as a notebook: prose and questions as markdown, each python block a code cell, in order.

    What a block imports from classroom is copied into a code cell just before it; widgets, interactive in the app,
    become a note. text: the lesson's markdown when the caller has read it already; language: the lesson's (its file
    and the notebook's own sentences)."""
    if text is None:
        text = lessons.path(slug, language).read_text(encoding="utf-8")
    _ = locale.translations(language).gettext
    lesson = lessons.parse(text, slug)
    blocks = lesson.code_blocks
    extra = _third_party(blocks)
    install = "pip install torch torchvision" + "".join(f" {name}" for name in extra)
    count = len(lessons.lesson_files())
    intro = _(
        "Lesson {number} of {total}, generated by {app} from `{file}`: the lesson's text, its code blocks as code cells, "
        "and its check-yourself questions with the answers folded away.\n\n"
        "It runs top to bottom in plain Python with `{install}` (numpy comes with torchvision). Where the lesson "
        "page imports helpers from the app's own `classroom` package, their code is copied into the notebook "
        "just before they are used. The interactive widgets of the lesson page exist only in the app."
    )
    file = lessons.path(slug, language).relative_to(lessons.LESSONS_DIR.parent).as_posix()
    setup = _(
        "# What the app does before it runs the lesson's code: fixed seeds, so the numbers match the lesson page,\n"
        "# and one CPU thread (these blocks are tiny: one thread runs them fastest)."
    )
    cells = [
        new_markdown_cell(
            f"# {lesson.title}\n\n" + intro.format(number=int(slug[:2]), total=count, app=APP, file=file, install=install)
        ),
        new_code_cell(
            setup + "\nimport random\n\nimport numpy as np\nimport torch\n\n"
            "torch.manual_seed(0)\nnp.random.seed(0)\nrandom.seed(0)\ntorch.set_num_threads(1)"
        ),
    ]
    inliner = Inliner()
    inliner.imported.update({"import random", "import numpy as np", "import torch"})  # the first code cell's
    copied: set[str] = set()  # names a code cell above defines
    questions, number = 0, 0
    for segment in lesson.segments:
        if isinstance(segment, Prose):
            cells.append(new_markdown_cell(segment.text))
        elif isinstance(segment, Code) and segment.runs:
            if number == 0 and slug in lessons.SETUP:  # names the page sets from the server's data: the notebook's own
                cells += _setup_cells(lessons.SETUP[slug], inliner, language)
            number += 1
            source, helpers, names = _lesson_block(segment.source, blocks, inliner, copied)
            if helpers:
                note = _(
                    "*In the app, the next block imports {names} from the app's `classroom` package; so that this "
                    "notebook runs on its own, that code is copied here.*"
                )
                cells.append(new_markdown_cell(note.format(names=", ".join(f"`{n}`" for n in names))))
                cells += [new_code_cell(h, metadata={"classroom": {"copied": True}}) for h in helpers]
            cells.append(new_code_cell(source, metadata={"classroom": {"block": number}}))
        elif isinstance(segment, Code):
            note = f"\n\n*{segment.note}*" if segment.note else ""
            language = segment.language if segment.language != "text" else ""
            cells.append(new_markdown_cell(f"```{language}\n{segment.source}\n```{note}"))
        elif isinstance(segment, Widget):
            cells.append(new_markdown_cell(_widget_note(segment.name, lesson, _)))
        elif isinstance(segment, Question):
            questions += 1
            cells.append(new_markdown_cell(_question_cell(segment, questions, _)))
    return _notebook(cells)


def _setup_cells(module: str, inliner: Inliner, language: str = "en") -> list:
    """The set-up a lesson's code reads (lessons.SETUP), as the module's notebook_setup() writes it for a notebook."""
    markdown, code, helpers = importlib.import_module(module).notebook_setup(language)
    copied = [new_code_cell(h, metadata={"classroom": {"copied": True}}) for h in inliner.cells(helpers)]
    return [new_markdown_cell(markdown), *copied, new_code_cell(code, metadata={"classroom": {"setup": True}})]


def _lesson_block(source: str, blocks: list[Code], inliner: Inliner, copied: set[str]) -> tuple[str, list[str], list[str]]:
    """(the block's code for the notebook, the helper cells to put before it, the names it imported from classroom)."""
    tree = ast.parse(source)
    spans, wanted, names = [], [], []
    namespaces = []  # (alias, module, attributes): `from classroom import data` then data.make_shapes(...)
    for node in _package_imports(tree):
        for alias in node.names:
            bound = alias.asname or alias.name
            names.append(bound)
            full = f"{node.module}.{alias.name}"
            if _is_package(node.module) and importlib.util.find_spec(full) is not None:  # a module: data.make_shapes(...)
                attributes = [a for a in _attributes_used(blocks, bound) if a in _module(full).definitions]
                wanted += [(full, a) for a in attributes]
                namespaces.append((bound, full, attributes))
            elif alias.asname and alias.asname != alias.name:
                raise NotebookError(f"`{alias.name} as {alias.asname}`: import classroom helpers under their own names")
            else:
                wanted.append((node.module, alias.name))
        listed = ", ".join(a.asname or a.name for a in node.names)
        spans.append((node.lineno, node.end_lineno, f"# {listed}: the app imports {_as_path(node)}; copied in above"))
    stand_ins = {}
    for bound, full, attributes in namespaces:
        fields = ", ".join(f"{a}={a}" for a in attributes)
        stand_ins[full] = f"{bound} = SimpleNamespace({fields})  # the app's {full} module, as the lesson uses it"
    helpers = inliner.cells(wanted, stand_ins)
    copied.update(name for name in inliner.defined)
    for node in tree.body:  # inspect cannot find the source of a class defined in a notebook cell: it is just above
        if (name := _prints_source_of(node)) in copied and inspect.isclass(_definition(inliner, name)):
            spans.append(
                (
                    node.lineno,
                    node.end_lineno,
                    f"# The app prints {name}'s source here; in this notebook it is in the copied code above.",
                )
            )
    return _replace_lines(source, spans), helpers, names


def _as_path(node: ast.ImportFrom) -> str:
    """`from classroom.models import Net` -> classroom/models.py; `from classroom import data` -> classroom/data.py."""
    if len(node.names) == 1 and _is_package(node.module):
        return f"{node.module}.{node.names[0].name}".replace(".", "/") + ".py"
    return node.module.replace(".", "/") + ".py"


def _is_package(module: str) -> bool:
    return hasattr(importlib.import_module(module), "__path__")


def _definition(inliner: Inliner, name: str):
    module, _, attr = inliner.defined[name].rpartition(".")
    return getattr(importlib.import_module(module), attr, None)


# --- a lab run -----------------------------------------------------------------------------------------------

SECTIONS = ("settings", "data", "model", "optimizer", "training", "evaluation")
DEF_SECTIONS = {
    "get_data": "data",
    "in_memory": "data",
    "normalize": "data",
    "learning_rate": "optimizer",
    "crop_and_flip": "training",
    "autocast": "training",
    "train": "training",
    "test": "evaluation",
}


@dataclass
class _Script:
    """The generated script cut into the notebook's steps."""

    docstring: str
    imports: str
    constants: str
    definitions: dict[str, list[str]]  # section -> the functions and classes defined in it, in script order
    main: dict[str, str]  # section -> that part of main()'s body, dedented


def _split_script(source: str) -> _Script:
    tree = ast.parse(source)
    lines = source.splitlines()

    def text(node: ast.AST) -> str:
        start = min([d.lineno for d in getattr(node, "decorator_list", [])] + [node.lineno])
        return "\n".join(lines[start - 1 : node.end_lineno])

    imports, constants, main = [], [], None
    defined: list[tuple[str, str, ast.AST]] = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            imports.append(text(node))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            constants.append(text(node))
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == "main":
            main = node
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defined.append((node.name, text(node), node))
    if main is None:
        raise NotebookError("the generated script has no main()")
    parts = _split_main(main, lines)
    definitions: dict[str, list[str]] = {s: [] for s in SECTIONS}
    unknown = []
    for name, body, node in defined:
        if name in DEF_SECTIONS:
            definitions[DEF_SECTIONS[name]].append(body)
        elif isinstance(node, ast.ClassDef) or any(name in names for names in script.MODEL_SOURCES.values()):
            definitions["model"].append(body)
        else:
            unknown.append((name, body))
    for name, body in unknown:  # a helper the script gained since: with the first step that uses it
        uses = [s for s in SECTIONS if re.search(rf"\b{re.escape(name)}\b", "\n".join(definitions[s]) + parts[s])]
        definitions[uses[0] if uses else "training"].append(body)
    return _Script(ast.get_docstring(tree) or "", "\n".join(imports), "\n".join(constants), definitions, parts)


def _split_main(main: ast.FunctionDef, lines: list[str]) -> dict[str, str]:
    """main()'s body cut where each step starts; a step whose start is not found stays part of the one before."""

    def calls(node: ast.AST, name: str) -> bool:
        return any(isinstance(n, ast.Call) and (ast.unparse(n.func) == name) for n in ast.walk(node))

    def assigns(node: ast.AST, name: str) -> bool:
        return isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets)

    starts = {
        "data": lambda n: calls(n, "get_data"),
        "model": lambda n: calls(n, "torch.manual_seed") or assigns(n, "net") or assigns(n, "seed"),
        "optimizer": lambda n: assigns(n, "criterion"),
        "training": lambda n: assigns(n, "steps") or (isinstance(n, ast.For) and ast.unparse(n.target) == "epoch"),
        "evaluation": lambda n: calls(n, "torch.save") or calls(n, "test"),
    }
    body = main.body
    if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # a docstring
    cuts = {"settings": body[0].lineno}
    at = 0
    for section in SECTIONS[1:]:
        for i in range(at, len(body)):
            if starts[section](body[i]):
                cuts[section], at = body[i].lineno, i + 1
                break
    parts, ordered = {}, sorted(cuts.items(), key=lambda item: item[1])
    for (section, start), following in zip(ordered, ordered[1:] + [(None, main.end_lineno + 1)]):
        parts[section] = textwrap.dedent("\n".join(lines[start - 1 : following[1] - 1])).strip("\n")
    return {s: parts.get(s, "") for s in SECTIONS}


@functools.lru_cache(maxsize=1)
def _field_notes() -> dict[str, str]:
    """TrainConfig's field comments: what each setting means, in the words of classroom/config.py."""
    notes = {}
    for line in inspect.getsource(TrainConfig).splitlines():
        if match := re.match(r"\s+(\w+): [^#]*?#\s*(.+)$", line):
            notes[match.group(1)] = match.group(2).strip()
    return notes


def _settings_table(config: TrainConfig) -> str:
    notes = _field_notes()
    rows = ["| setting | value | what it means |", "|---|---|---|"]
    for key, value in config.to_dict().items():
        shown = tuple(value) if isinstance(value, list) else value
        rows.append(f"| `{key}` | {_md_escape(repr(shown))} | {_md_escape(notes.get(key, ''))} |")
    return "\n".join(rows)


def _data_words(config: TrainConfig) -> tuple[str, list[str]]:
    """(what the notebook trains on, in markdown; the command-line options that choose it)."""
    if config.data == "shapes":
        return (
            "the app's built-in synthetic **shapes** set, as this run did: 10 classes of coloured shapes and textures "
            "on a noisy background, 10,000 training and 2,000 test images of 32x32 pixels, generated in a second by "
            "code copied from the app into this notebook (nothing is downloaded). These are not photos. To train on "
            'CIFAR-10 instead, set `OPTIONS = ["--data", "cifar10"]` below (it downloads about 170 MB into `./data`).',
            ["--data", "shapes"],
        )
    if config.data == "cifar10":
        return (
            "**CIFAR-10**, as this run did: 50,000 training and 10,000 test photos of 32x32 pixels in 10 classes. "
            "torchvision downloads it into `./data` on the first run (about 170 MB).",
            [],
        )
    path = config.data[len("folder:") :]
    return (
        f"the **image folder** {_md_escape(path)} on the server, as this run did (`train/<class>/` and "
        "`test/<class>/` inside it, every image resized to 32x32). On your machine, point `--data` in `OPTIONS` "
        "below at your own copy of it.",
        [],
    )


def _measured(results, config: TrainConfig) -> str:
    """A markdown cell: what the app measured for this run, in the lines the evaluation step prints."""
    from classroom.evaluation import confusion_lines

    lines = ["## What the app measured for this run", ""]
    device = getattr(results, "device", "") or "unknown"
    lines.append(f"Run {_md_escape(results.id)} ended **{_md_escape(results.status)}** on {_md_escape(device)}.")
    epochs = list(getattr(results, "epochs", ()) or ())
    if epochs:
        last = epochs[-1]
        classes = tuple(getattr(results, "classes", ()) or last.get("per_class_accuracy", {}))
        lines += [
            "",
            f"Its test after epoch {last['epoch']} of {config.epochs}, in the lines the evaluation step above prints:",
            "",
            "```text",
            *confusion_lines(last["confusion"], classes),
            "```",
        ]
    final = getattr(results, "test_accuracy", None)
    if final is not None:
        lines += ["", f"Final test accuracy: **{100 * final:.1f} %**."]
    if not epochs and final is None:
        lines += ["", "It recorded no test results (it ended before its first evaluation)."]
    lines += [
        "",
        "The notebook trains from the same seed, on the same data, with the same batches"
        + (", crops and flips" if config.augment else "")
        + ": on the same kind of device and precision it should print the same numbers, or nearly (another CPU, a "
        "GPU or mixed precision rounds differently, which can change a few predictions)."
        + (" This run drew a fresh random seed, so expect different numbers." if config.seed is None else ""),
    ]
    return "\n".join(lines)


def run_notebook(config: TrainConfig, run_id: str = "", results=None) -> nbformat.NotebookNode:
    """The lab run's configuration as a notebook: the generated script (classroom.script) cut into its steps,
    each explained, and the settings as a table; with results (a run's Snapshot or Record), what the app measured.

    A shapes run trains on the synthetic set, made by code copied from classroom.data; CIFAR-10 and image-folder
    runs read what the script reads. A config with max_steps trains and tests that many batches (a dry run)."""
    config.validate()
    parts = _split_script(script.script(config))
    data_text, options = _data_words(config)
    if config.max_steps:
        options += ["--max-batches", str(config.max_steps)]
    title = f"Run {_md_escape(run_id)}" if run_id else "A lab run"
    title += f" ({_md_escape(config.name)})" if config.name else ""
    shapes = config.data == "shapes"
    m = "`, `".join(n for n in script.MODEL_SOURCES[config.model] if not n.startswith("_"))
    cells = [
        new_markdown_cell(
            f"# {title}: `{config.model}` on {_md_escape(config.data)}\n\n"
            f"Generated by {APP}: this lab run's training as a notebook. It is the standalone script the lab shows "
            f'under "Show the code" (`{script.filename(config)}`), cut into its steps with a word on each; it trains '
            f"{models.DESCRIPTIONS[config.model]}. It runs top to bottom with `pip install torch torchvision`.\n\n"
            f"**Data:** {data_text}"
            + (
                f"\n\n**A dry run:** this run stopped each epoch after {config.max_steps} batches and tested on as many "
                "batches of 1000 images; `--max-batches` in `OPTIONS` does the same here (remove it for the full run)."
                if config.max_steps
                else ""
            )
        ),
        new_markdown_cell("## The run's settings\n\n" + _settings_table(config)),
        new_markdown_cell(
            "## 1. Imports and constants\n\nPyTorch and torchvision, and the numbers the steps below share: the "
            "per-channel mean and standard deviation that normalise every image"
            + (", the crop padding" if config.augment else "")
            + (", the learning-rate schedule's peak and warm-up" if config.schedule == "onecycle" else "")
            + "."
        ),
        new_code_cell(parts.imports + "\n\n" + parts.constants),
        new_markdown_cell(
            "### Settings\n\nThe script reads its settings from the command line; a notebook has none, so `OPTIONS` "
            "holds them: the same names as the command-line options below (`--epochs 5`, `--batch-size 64`, ...), "
            "and each option's default is this run's setting."
        ),
        new_code_cell(f'OPTIONS = {options!r}  # more: ["--epochs", "1", "--max-batches", "20"], ...'),
        new_code_cell(_notebook_settings(parts)),
        new_markdown_cell(
            "## 2. The data\n\nThe whole set is held in memory as one uint8 tensor of shape `[N, 3, 32, 32]` and "
            "normalised batch by batch: the tutorial's `ToTensor()` and `Normalize(MEAN, STD)`, as arithmetic."
            + (" The synthetic set is made by the code copied from the app below." if shapes else "")
        ),
        new_code_cell("\n\n\n".join(parts.definitions["data"])),
    ]
    main_data = parts.main["data"]
    if shapes:
        inliner = Inliner()
        inliner.imported.update(parts.imports.splitlines())
        cells += [new_code_cell(c) for c in inliner.cells([("classroom.data", "make_shapes")])]
        cells.append(new_code_cell(LOAD_DATA))
        main_data = main_data.replace("get_data(args)", "load_data(args)")
    cells += [
        new_code_cell(main_data + '\nprint(f"{len(train_x)} training and {len(test_x)} test images; classes: {classes}")'),
        new_markdown_cell(
            f"## 3. The model\n\n`{m}`: {models.DESCRIPTIONS[config.model]}, copied from the app's `classroom/models.py`, "
            "so this trains the very architecture the lab trains. The seed fixes its initial weights and the batch "
            "order."
        ),
        new_code_cell("\n\n\n".join(parts.definitions["model"])),
        new_code_cell(parts.main["model"] + "\nprint(net)"),
        new_markdown_cell(_optimizer_words(config)),
    ]
    if parts.definitions["optimizer"]:
        cells.append(new_code_cell("\n\n\n".join(parts.definitions["optimizer"])))
    cells += [
        new_code_cell(parts.main["optimizer"]),
        new_markdown_cell(_training_words(config)),
        new_code_cell("\n\n\n".join(parts.definitions["training"])),
        new_code_cell(parts.main["training"]),
        new_markdown_cell(
            "## 6. Test the network\n\nPredict the class with the highest score for every test image, without "
            "recording gradients, and count how many are right, overall and per class: the tutorial's printed lines"
            + (", each prediction averaged with that of the mirrored image (test-time augmentation)" if config.tta else "")
            + ". The trained weights are saved first, as in the tutorial."
        ),
        new_code_cell("\n\n\n".join(parts.definitions["evaluation"])),
        new_code_cell(parts.main["evaluation"]),
    ]
    if results is not None:
        cells.append(new_markdown_cell(_measured(results, config)))
    return _notebook([c for c in cells if c.source.strip()])


LOAD_DATA = '''def load_data(args):
    """The data set as tensors: "shapes" is the app's synthetic set, made above; anything else is the script's get_data."""
    if args.data == "shapes":
        shapes = make_shapes()
        return shapes.train_x, shapes.train_y, shapes.test_x, shapes.test_y, shapes.classes
    return get_data(args)'''


def _notebook_settings(parts: _Script) -> str:
    """main()'s first lines (the options, threads, device) reading OPTIONS rather than the command line."""
    code = parts.main["settings"]
    first = parts.docstring.splitlines()[0] if parts.docstring else "Train a CNN"
    code = code.replace("__doc__.splitlines()[0]", repr(first))
    if "parser.parse_args()" in code:
        code = code.replace("parser.parse_args()", "parser.parse_args(OPTIONS)")
    else:
        raise NotebookError("the generated script's main() no longer reads its options with parser.parse_args()")
    return code + '\nprint("training on", device)'


def _optimizer_words(config: TrainConfig) -> str:
    c = config
    names = {"sgd": "SGD with momentum", "nesterov": "SGD with Nesterov momentum", "adam": "Adam", "adamw": "AdamW"}
    text = "## 4. Loss function and optimizer\n\nCross-entropy loss" + (
        f" with label smoothing {c.label_smoothing:g}" if c.label_smoothing else ""
    )
    text += f", and {names[c.optimizer]} at learning rate {c.lr:g} (momentum {c.momentum:g}"
    text += f", weight decay {c.weight_decay:g} on the weights)." if c.weight_decay else ")."
    if c.schedule == "onecycle":
        text += (
            f" The learning rate follows a one-cycle schedule: it rises linearly over the first {c.warmup:.0%} of the "
            "steps to its peak, then falls linearly to 0 at the last step."
        )
    return text


def _training_words(config: TrainConfig) -> str:
    c = config
    text = (
        f"## 5. Train the network\n\n{c.epochs} epoch{'s' * (c.epochs != 1)} of batches of {c.batch_size} images in a "
        "fresh random order each epoch; for each batch: zero the gradients, forward, loss, backward, step. The mean "
        f"loss is printed every {c.log_interval} batches (the tutorial's `[epoch, batch] loss:` lines)."
    )
    if c.augment:
        text += f" Each image is shifted by up to {c.translate} pixels (a random crop) and mirrored every other epoch."
    if c.precision != "fp32":
        text += " Matrix products run in bfloat16 where the device computes it fast (`autocast`)."
    return text
