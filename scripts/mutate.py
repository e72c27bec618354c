"""A small mutation check, run by hand (not in CI): do the tests notice when the engine is subtly wrong?

Each mutant changes one thing in classroom/training.py, evaluation.py or data.py: a comparison (< for <=,
== for !=), an arithmetic operator (+ for -, * for /), `and` for `or`, a dropped `not`, a number off by one,
True for False, or a call statement deleted (`self.running.set()` -> `pass`). The mutants are found in the
syntax tree, a sample of them is drawn (the same sample for the same seed and sources), and each one is
written into a temporary copy of the working tree, where the test files that cover that module run with
a time limit. A mutant the tests fail on (or that hangs past the limit) is killed; one they pass survives.

    .venv/bin/python scripts/mutate.py                 # 40 mutants, seed 0: about 20 minutes on 2 cores
    .venv/bin/python scripts/mutate.py --sample 0      # every mutant (hours)
    .venv/bin/python scripts/mutate.py --list          # the mutants, without running anything
    .venv/bin/python scripts/mutate.py --file classroom/training.py --sample 10

The working tree is never changed. Survivors are printed with their line: each is a missing test or an
equivalent mutant (one no test could tell apart, e.g. `x >= 0` for `x > 0` where x is never 0).
"""

from __future__ import annotations

import argparse
import ast
import copy
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The module under mutation -> the test files that exercise it (-x: the first failure kills the mutant).
TESTS = {
    "classroom/training.py": ["tests/test_training.py", "tests/test_speed_paths.py"],
    "classroom/evaluation.py": [
        "tests/test_evaluation.py",
        "tests/test_reevaluation.py",
        "tests/test_cli.py",
        "tests/test_training.py",
    ],
    "classroom/data.py": ["tests/test_data.py", "tests/test_data_limits.py", "tests/test_training.py"],
}

COMPARE = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
           ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In}  # fmt: skip
ARITH = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Div, ast.Mod: ast.FloorDiv}
BOOL = {ast.And: ast.Or, ast.Or: ast.And}


@dataclass(frozen=True)
class Mutant:
    path: str  # relative to the repository root
    line: int
    operator: str
    before: str
    after: str
    source: str  # the whole mutated file

    def __str__(self) -> str:
        return f"{self.path}:{self.line} [{self.operator}] {self.before} -> {self.after}"


def _spans(tree: ast.AST) -> set[int]:
    """ids of nodes inside f-strings (their positions are unreliable) or annotations (not run)."""
    skip = set()
    for node in ast.walk(tree):
        inner = []
        if isinstance(node, ast.JoinedStr):
            inner = [node]
        elif isinstance(node, ast.AnnAssign):
            inner = [node.annotation]
        elif isinstance(node, ast.arg) and node.annotation is not None:
            inner = [node.annotation]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None:
            inner = [node.returns]
        for root in inner:
            skip.update(id(n) for n in ast.walk(root))
    return skip


def _replace(text: str, node: ast.AST, new: str) -> str:
    """text with node's source span replaced by new."""
    lines = text.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line.encode()))
    data = text.encode()
    start = offsets[node.lineno - 1] + node.col_offset
    end = offsets[node.end_lineno - 1] + node.end_col_offset
    return (data[:start] + new.encode() + data[end:]).decode()


def _expression_mutations(node: ast.AST):
    """(operator name, replacement node) for one expression node."""
    if isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            if type(op) in COMPARE:
                new = copy.deepcopy(node)
                new.ops[i] = COMPARE[type(op)]()
                yield "compare", new
    elif isinstance(node, ast.BinOp) and type(node.op) in ARITH:
        if isinstance(node.op, ast.Mod) and isinstance(node.left, ast.Constant) and isinstance(node.left.value, str):
            return  # "%" formatting of a string
        new = copy.deepcopy(node)
        new.op = ARITH[type(node.op)]()
        yield "arithmetic", new
    elif isinstance(node, ast.BoolOp):
        new = copy.deepcopy(node)
        new.op = BOOL[type(node.op)]()
        yield "boolean", new
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        yield "drop not", node.operand
    elif isinstance(node, ast.Constant) and type(node.value) is bool:
        yield "flip bool", ast.Constant(not node.value)
    elif isinstance(node, ast.Constant) and type(node.value) in (int, float) and not isinstance(node.value, bool):
        yield "number", ast.Constant(node.value + 1)


def mutants(root: Path, path: str) -> list[Mutant]:
    """Every mutant of one file under root, in source order."""
    text = (root / path).read_text()
    tree = ast.parse(text)
    skip = _spans(tree)
    found = []
    for node in ast.walk(tree):
        if id(node) in skip or not hasattr(node, "lineno"):
            continue
        candidates = []
        if isinstance(node, ast.expr):
            before = ast.get_source_segment(text, node)
            for name, new in _expression_mutations(node):
                candidates.append((name, node, before, "(" + ast.unparse(new) + ")"))
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):  # a call for its effect
            before = ast.get_source_segment(text, node)
            candidates.append(("delete call", node, before, "pass"))
        for name, target, before, after in candidates:
            source = _replace(text, target, after)
            try:
                ast.parse(source)
            except SyntaxError:
                continue
            shown = " ".join(before.split())
            found.append(Mutant(path, target.lineno, name, shown[:80], after[:80], source))
    return sorted(found, key=lambda m: (m.line, m.operator, m.after))


def copy_tree(into: Path) -> None:
    """The working tree as git sees it (tracked and new files, nothing ignored) into `into`."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True)
    for name in listed.stdout.decode().split("\0"):
        if name and (ROOT / name).is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, into / name)


def run_tests(tree: Path, tests: list[str], timeout: float) -> tuple[str, float]:
    """('passed' | 'failed' | 'timeout', seconds) for the tests in the copy."""
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-o", "addopts=", *tests]
    start = time.monotonic()
    try:
        done = subprocess.run(cmd, cwd=tree, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - start
    return ("passed" if done.returncode == 0 else "failed"), time.monotonic() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", action="append", choices=sorted(TESTS), help="mutate only this file (repeatable)")
    parser.add_argument("--sample", type=int, default=40, help="mutants drawn at random (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--list", action="store_true", help="print the mutants and exit")
    args = parser.parse_args(argv)

    files = args.file or sorted(TESTS)

    def draw(root: Path, paths: list[str]) -> list[Mutant]:
        every = [m for path in paths for m in mutants(root, path)]
        chosen = every if not args.sample or args.sample >= len(every) else random.Random(args.seed).sample(every, args.sample)
        print(f"{len(every)} mutants in {', '.join(paths)}; running {len(chosen)} (seed {args.seed})", flush=True)
        return sorted(chosen, key=lambda m: (m.path, m.line, m.operator))

    if args.list:
        for m in draw(ROOT, files):
            print(m)
        return 0

    with tempfile.TemporaryDirectory(prefix="mutate-") as tmp:
        tree = Path(tmp)
        copy_tree(tree)  # a snapshot: edits made to the working tree meanwhile do not leak into the run
        limits = {}
        for path in files:  # the tests must pass on the unmutated code, and set each module's time limit
            status, seconds = run_tests(tree, TESTS[path], timeout=900)
            if status != "passed":
                print(f"baseline {path}: its tests do not pass unmutated ({status}); its mutants are left out", flush=True)
                continue
            limits[path] = 3 * seconds + 30
            print(f"baseline {path}: {' '.join(TESTS[path])} pass in {seconds:.0f} s; limit {limits[path]:.0f} s", flush=True)
        if not limits:
            return 2
        chosen = draw(tree, [p for p in files if p in limits])
        killed, survived = 0, []
        for i, m in enumerate(chosen, 1):
            original = (tree / m.path).read_text()
            (tree / m.path).write_text(m.source)
            try:
                status, seconds = run_tests(tree, TESTS[m.path], timeout=limits[m.path])
            finally:
                (tree / m.path).write_text(original)
            verdict = "SURVIVED" if status == "passed" else "killed" if status == "failed" else "killed (timeout)"
            killed += status != "passed"
            if status == "passed":
                survived.append(m)
            print(f"[{i}/{len(chosen)}] {verdict:16s} {seconds:5.0f} s  {m}", flush=True)

    score = 100 * killed / max(len(chosen), 1)
    print(f"\nmutation score: {killed}/{len(chosen)} killed ({score:.0f} %)")
    for m in survived:
        print(f"  survived: {m}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
