"""Run a student's edited lesson snippet, and nothing else: a whitelist first, then a limited process.

Two layers, each enough on its own for what the other lets through:

1. `check(source)` parses the snippet (ast, never compiled or run in the server) and refuses it unless every node
   is on a whitelist: literals, arithmetic, comparisons, assignments, `for`/`while`/`if`, `with torch.no_grad():`,
   subscripts, f-strings, calls of the listed torch / numpy functions, the listed tensor attributes and methods,
   and a few builtins (print, range, len, ...). No imports, def, lambda, class, try, comprehensions, global,
   no name or attribute with `__`, no getattr/eval/open. The refusal names the first construct and its line.
2. `run(source)` runs it in a separate process: a fork of a warm "zygote" process (python -I with torch imported,
   started once, with an empty environment: no tokens) that does nothing but fork. Before the snippet runs, the
   child closes every inherited descriptor but its result pipe, drops root if it has it, and sets hard OS limits
   it cannot raise: RLIMIT_CPU (SIGXCPU, then SIGKILL), RLIMIT_AS (memory), RLIMIT_FSIZE 0 (writes no file),
   RLIMIT_NOFILE at the descriptors it holds (opens no file, socket or pipe), RLIMIT_NPROC 0 (starts no process),
   no core dumps. Its globals are a fresh dict holding torch, np and the safe
   builtins only; print writes to a capped buffer. The server reads the result with a wall-clock deadline and a
   byte cap, and has the zygote SIGKILL the child on overrun. The server never `exec`s or `compile`s a snippet.

Measured (2 busy cores): a fresh `python -c "import torch"` takes 2.6-5 s (1.2 s of CPU); a fork of the warm
zygote runs a small snippet and answers in about 40 ms, with ~2 MB of private memory.

This module is also the zygote's program (`python -I sandbox.py --zygote FD`): it imports only the standard
library at the top (torch and numpy are imported by the zygote), and -I keeps the caller's paths and environment
variables out.
"""

from __future__ import annotations

import ast
import atexit
import builtins
import json
import math
import os
import resource
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass

# -- limits --------------------------------------------------------------------------------------------------------
TIMEOUT = 3.0  # seconds of CPU time a snippet may use (the server waits at most this plus GRACE)
MEMORY_MB = 256  # address space a snippet may add to what the zygote had with torch loaded
OUTPUT_CHARS = 10_000  # characters of printed output kept; past it the snippet is stopped
SLOTS = 2  # snippets running at once in this server; a run that finds none free within a second is told so
GRACE = 2.0  # seconds past the timeout before the server kills the child (the CPU limit fires first)
STARTUP_TIMEOUT = 30.0  # the zygote's first import of torch (seconds); only the first run after a start waits for it

MAX_SOURCE = 4000  # characters of snippet
MAX_DEPTH = 40  # nesting of the syntax tree
MAX_STRING = 1000  # characters in one string literal
MAX_INT = 10**18  # magnitude of an integer literal
MAX_EXPONENT = 1000  # magnitude of a literal exponent of **, and no ** in an exponent (10**10**10)

# -- the whitelist -------------------------------------------------------------------------------------------------
MODULES = {"torch": "torch", "np": "np", "numpy": "np"}  # the names a snippet finds bound, and the list each uses

FUNCTIONS = frozenset(
    # torch: making tensors, randomness, maths, shapes, comparisons, dtypes, recording on/off, a linear layer
    "torch." + name
    for name in """tensor zeros ones full eye arange linspace rand randn randint zeros_like ones_like full_like rand_like
    randn_like manual_seed from_numpy stack cat matmul mm dot outer exp log sin cos tan tanh sigmoid relu sqrt abs sum
    mean std max min argmax argmin clamp where flatten reshape transpose squeeze unsqueeze allclose equal softmax
    no_grad enable_grad float16 float32 float64 int32 int64 bool float double long int
    nn.Linear nn.ReLU nn.MSELoss nn.functional.relu nn.functional.sigmoid nn.functional.softmax
    nn.functional.mse_loss nn.functional.cross_entropy""".split()
) | frozenset(
    "np." + name
    for name in """array zeros ones full eye arange linspace shares_memory dot matmul exp log sqrt sin cos sum mean
    allclose float32 float64 int64 random.rand random.randn random.seed""".split()
)

ATTRIBUTES = frozenset(
    # of tensors, arrays, layers (weight, bias) and autograd nodes (name, next_functions), whatever the receiver
    """shape dtype device ndim T grad requires_grad grad_fn is_leaf data weight bias next_functions name
    backward item tolist numpy numel size dim sum mean std max min argmax argmin all any norm
    view reshape flatten t transpose permute unsqueeze squeeze expand detach clone contiguous copy astype
    add sub mul div pow sqrt exp log abs sin cos tanh sigmoid relu softmax clamp matmul dot
    float double long int bool is_floating_point zero_ requires_grad_ add_ sub_ mul_ fill_""".split()
)
SETTABLE = frozenset({"grad", "requires_grad"})  # x.grad = None (what zero_grad does)
BUILTINS = ("print", "range", "len", "list", "tuple", "float", "int", "bool", "str", "abs", "min", "max", "sum",
            "round", "enumerate", "zip")  # fmt: skip
RECORDING = frozenset({"torch.no_grad", "torch.enable_grad"})  # the only `with` allowed: `with torch.no_grad():`
EDITABLE_IMPORTS = frozenset({"import torch", "import numpy as np"})  # dropped from a lesson block to edit it

_PYTHON_BUILTINS = frozenset(dir(builtins))
torch = np = None  # imported by the zygote only: the server never needs them here
_OPERATORS = {
    ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.MatMult, ast.BitAnd, ast.BitOr, ast.BitXor,
    ast.UAdd, ast.USub, ast.Not, ast.Invert, ast.And, ast.Or, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE,
    ast.Is, ast.IsNot, ast.In, ast.NotIn,
}  # fmt: skip
_WHY = {
    ast.Import: "imports are not allowed (torch and np are already there)",
    ast.ImportFrom: "imports are not allowed (torch and np are already there)",
    ast.Lambda: "lambda is not allowed",
    ast.FunctionDef: "def is not allowed",
    ast.AsyncFunctionDef: "def is not allowed",
    ast.ClassDef: "class is not allowed",
    ast.Return: "return is not allowed",
    ast.Try: "try is not allowed",
    ast.Raise: "raise is not allowed",
    ast.Assert: "assert is not allowed",
    ast.Delete: "del is not allowed",
    ast.Global: "global is not allowed",
    ast.Nonlocal: "nonlocal is not allowed",
    ast.Await: "await is not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
    ast.ListComp: "comprehensions are not allowed (use a for loop)",
    ast.SetComp: "comprehensions are not allowed (use a for loop)",
    ast.DictComp: "comprehensions are not allowed (use a for loop)",
    ast.GeneratorExp: "comprehensions are not allowed (use a for loop)",
    ast.Dict: "dictionaries are not allowed",
    ast.Set: "sets are not allowed",
    ast.Starred: "* unpacking is not allowed",
    ast.NamedExpr: ":= is not allowed",
    ast.LShift: "<< is not allowed",
    ast.RShift: ">> is not allowed",
}
if hasattr(ast, "TryStar"):  # Python 3.11+
    _WHY[ast.TryStar] = "try is not allowed"


class Refused(ValueError):
    """A snippet that is not run; `reason` names the first construct off the whitelist, `line` its line."""

    def __init__(self, reason: str, line: int | None = None):
        self.reason, self.line = reason, line
        super().__init__(f"line {line}: {reason}" if line else reason)


def check(source: str) -> None:
    """Raise Refused unless every node of `source` is on the whitelist. Parses only: nothing is compiled or run."""
    if not isinstance(source, str):
        raise Refused("the code must be text")
    if len(source) > MAX_SOURCE:
        raise Refused(f"the code is longer than {MAX_SOURCE:,} characters")
    try:
        tree = ast.parse(source, "<your code>")
    except SyntaxError as e:
        raise Refused(f"Python cannot read this: {e.msg}", e.lineno) from None
    except ValueError as e:  # a NUL byte
        raise Refused(f"Python cannot read this: {e}") from None
    except (RecursionError, MemoryError):  # nesting past what the parser takes
        raise Refused(f"the code is nested more than {MAX_DEPTH} levels deep") from None
    _check_depth(tree)
    _Checker().statements(tree.body)


def editable(source: str) -> str | None:
    """A lesson block as the student may edit it (its `import torch` / `import numpy as np` lines dropped: both
    are already there), or None when the block is not on the whitelist (try, lambda, ...) and gets no edit box."""
    code = "\n".join(line for line in source.splitlines() if line.strip() not in EDITABLE_IMPORTS).strip("\n")
    try:
        check(code)
    except Refused:
        return None
    return code


def _check_depth(tree: ast.AST) -> None:
    stack: list[tuple[ast.AST, int, int | None]] = [(tree, 0, None)]
    while stack:  # iterative: a deep tree must not be able to exhaust the server's stack
        node, depth, line = stack.pop()
        line = getattr(node, "lineno", line)
        if depth > MAX_DEPTH:
            raise Refused(f"the code is nested more than {MAX_DEPTH} levels deep", line)
        stack.extend((child, depth + 1, line) for child in ast.iter_child_nodes(node))


def _dunder(name: str) -> bool:
    return "__" in name


class _Checker:
    """Walks statements and expressions in source order; refuses at the first node off the whitelist."""

    line = None

    def refuse(self, node: ast.AST, reason: str) -> None:
        raise Refused(reason, getattr(node, "lineno", self.line))

    def statements(self, body: list[ast.stmt]) -> None:
        for node in body:
            self.line = node.lineno
            self.statement(node)

    def statement(self, node: ast.stmt) -> None:
        if isinstance(node, ast.Expr):
            self.expr(node.value)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                self.target(target)
            self.expr(node.value)
        elif isinstance(node, ast.AugAssign):
            self.target(node.target)
            self.operator(node, node.op)
            self.expr(node.value)
        elif isinstance(node, ast.For):
            self.loop_target(node.target)
            self.expr(node.iter)
            self.statements(node.body)
            self.statements(node.orelse)
        elif isinstance(node, (ast.While, ast.If)):
            self.expr(node.test)
            self.statements(node.body)
            self.statements(node.orelse)
        elif isinstance(node, (ast.Break, ast.Continue, ast.Pass)):
            pass
        elif isinstance(node, ast.With):
            self.with_(node)
        else:
            self.refuse(node, _WHY.get(type(node), f"{_kind(node)} is not allowed"))

    def with_(self, node: ast.With) -> None:
        item = node.items[0]
        call = item.context_expr
        if (
            len(node.items) != 1
            or item.optional_vars is not None
            or not isinstance(call, ast.Call)
            or call.args
            or call.keywords
            or _module_path(call.func) not in RECORDING
        ):
            self.refuse(node, "the only `with` allowed is `with torch.no_grad():` (or torch.enable_grad())")
        self.statements(node.body)

    def target(self, node: ast.expr) -> None:
        """Something assigned to: a variable, an element, a tuple of them, or x.grad / x.requires_grad."""
        if isinstance(node, ast.Name):
            self.store(node)
        elif isinstance(node, (ast.Tuple, ast.List)):
            for element in node.elts:
                self.target(element)
        elif isinstance(node, ast.Subscript):
            self.expr(node.value)
            self.expr(node.slice)
        elif isinstance(node, ast.Attribute):
            if _root(node) in MODULES:
                self.refuse(node, f"{_root(node)}'s own names cannot be changed")
            if node.attr not in SETTABLE:
                self.refuse(node, f"only {' and '.join(sorted('.' + a for a in SETTABLE))} may be assigned to, not .{node.attr}")
            self.expr(node.value)
        else:
            self.refuse(node, f"cannot assign to {_kind(node)}")

    def loop_target(self, node: ast.expr) -> None:
        if isinstance(node, ast.Name):
            self.store(node)
        elif isinstance(node, (ast.Tuple, ast.List)):
            for element in node.elts:
                self.loop_target(element)
        else:
            self.refuse(node, "a for loop's variable must be a name")

    def store(self, node: ast.Name) -> None:
        name = node.id
        if _dunder(name):
            self.refuse(node, f"names with __ are not allowed ({name})")
        if name in MODULES or name in _PYTHON_BUILTINS:
            self.refuse(node, f"{name} is a name Python or the lesson already uses: pick another")

    def operator(self, node: ast.AST, op: ast.AST) -> None:
        if type(op) not in _OPERATORS:
            self.refuse(node, _WHY.get(type(op), f"the operator {_kind(op)} is not allowed"))

    def expr(self, node: ast.expr | None) -> None:
        if node is None:
            return
        if isinstance(node, ast.Constant):
            self.constant(node)
        elif isinstance(node, ast.Name):
            self.name(node)
        elif isinstance(node, ast.Attribute):
            self.attribute(node)
        elif isinstance(node, ast.Call):
            self.call(node)
        elif isinstance(node, ast.BinOp):
            self.operator(node, node.op)
            if isinstance(node.op, ast.Pow):
                self.exponent(node.right)
            self.expr(node.left)
            self.expr(node.right)
        elif isinstance(node, ast.UnaryOp):
            self.operator(node, node.op)
            self.expr(node.operand)
        elif isinstance(node, ast.BoolOp):
            self.operator(node, node.op)
            for value in node.values:
                self.expr(value)
        elif isinstance(node, ast.Compare):
            for op in node.ops:
                self.operator(node, op)
            self.expr(node.left)
            for value in node.comparators:
                self.expr(value)
        elif isinstance(node, ast.IfExp):
            self.expr(node.test)
            self.expr(node.body)
            self.expr(node.orelse)
        elif isinstance(node, ast.Subscript):
            self.expr(node.value)
            self.expr(node.slice)
        elif isinstance(node, ast.Slice):
            self.expr(node.lower)
            self.expr(node.upper)
            self.expr(node.step)
        elif isinstance(node, (ast.List, ast.Tuple)):
            for element in node.elts:
                self.expr(element)
        elif isinstance(node, ast.JoinedStr):
            for value in node.values:
                self.expr(value)
        elif isinstance(node, ast.FormattedValue):
            self.expr(node.value)
            self.expr(node.format_spec)
        else:
            self.refuse(node, _WHY.get(type(node), f"{_kind(node)} is not allowed"))

    def constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, str):
            if len(value) > MAX_STRING:
                self.refuse(node, f"strings longer than {MAX_STRING} characters are not allowed")
            if _dunder(value):
                self.refuse(node, "text with __ in it is not allowed")
        elif isinstance(value, bool) or value is None or value is Ellipsis:
            pass
        elif isinstance(value, int):
            if abs(value) > MAX_INT:
                self.refuse(node, f"integers beyond {MAX_INT:.0e} are not allowed")
        elif not isinstance(value, (float, complex)):
            self.refuse(node, f"{type(value).__name__} literals are not allowed")

    def exponent(self, node: ast.expr) -> None:
        """`x ** 2`, `x ** n` and `2 ** 0.5` are fine; `10 ** 10 ** 10` and `2 ** 99999999` are refused."""
        literal = node.operand if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)) else node
        if isinstance(literal, ast.Constant) and isinstance(literal.value, (int, float)) and abs(literal.value) > MAX_EXPONENT:
            self.refuse(node, f"exponents beyond {MAX_EXPONENT} are not allowed")
        if any(isinstance(n, ast.BinOp) and isinstance(n.op, ast.Pow) for n in ast.walk(node)):
            self.refuse(node, "a power in an exponent (like 10 ** 10 ** 10) is not allowed")

    def name(self, node: ast.Name) -> None:
        name = node.id
        if name in BUILTINS:
            return
        if name in MODULES:
            self.refuse(node, f"{name} can only be used to call its listed functions, like {name}.zeros(3)")
        if _dunder(name):
            self.refuse(node, f"names with __ are not allowed ({name})")
        if name in _PYTHON_BUILTINS:
            self.refuse(node, f"{name} is not available here")
        # anything else is one of the student's own variables

    def attribute(self, node: ast.Attribute) -> None:
        if _dunder(node.attr) or node.attr.startswith("_"):
            self.refuse(node, f"attributes starting with _ are not allowed ({node.attr})")
        if _root(node) in MODULES:
            path = _module_path(node)
            if path not in FUNCTIONS:
                self.refuse(node, f"{_dotted(node)} is not on the list of allowed torch and numpy functions")
            return  # a listed chain: its parts (torch.nn, ...) are not values of their own
        if node.attr not in ATTRIBUTES:
            self.refuse(node, f".{node.attr} is not on the list of allowed attributes and methods")
        self.expr(node.value)

    def call(self, node: ast.Call) -> None:
        if not isinstance(node.func, (ast.Name, ast.Attribute)):
            self.refuse(node, "only functions and methods may be called")
        self.expr(node.func)
        for arg in node.args:
            self.expr(arg)
        for keyword in node.keywords:
            if keyword.arg is None:
                self.refuse(node, "** unpacking is not allowed")
            if _dunder(keyword.arg):
                self.refuse(node, f"names with __ are not allowed ({keyword.arg})")
            self.expr(keyword.value)


def _kind(node: ast.AST) -> str:
    return type(node).__name__


def _root(node: ast.expr) -> str | None:
    """The name an attribute chain starts from (torch for torch.nn.Linear), or None if it starts elsewhere."""
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _dotted(node: ast.expr) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    parts.append(node.id if isinstance(node, ast.Name) else "...")
    return ".".join(reversed(parts))


def _module_path(node: ast.expr) -> str | None:
    """torch.nn.Linear -> 'torch.nn.Linear', numpy.zeros -> 'np.zeros'; None unless a chain from torch/np/numpy."""
    root = _root(node)
    if root not in MODULES or not isinstance(node, ast.Attribute):
        return None
    dotted = _dotted(node)
    return MODULES[root] + dotted[len(root) :]


# -- running -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Result:
    stdout: str = ""  # what the snippet printed (at most output_chars characters)
    error: str = ""  # the exception it raised, as `line N: Type: message`; or why it could not run
    killed_reason: str = ""  # a sentence when a limit stopped it: time, memory, output
    seconds: float = 0.0  # wall-clock time in the server, start of the request to the answer


def run(source: str, timeout: float = TIMEOUT, memory_mb: int = MEMORY_MB, output_chars: int = OUTPUT_CHARS) -> Result:
    """check(source) (raising Refused), then run it in a limited child process and return what it printed.

    The calling thread waits at most timeout + GRACE seconds for the run (plus, for the first run after the
    server starts, the zygote's import of torch, at most STARTUP_TIMEOUT)."""
    check(source)
    if not (0 < timeout <= 60 and 16 <= memory_mb <= 16384 and 1 <= output_chars <= 10**6):
        raise ValueError("timeout must be in (0, 60] s, memory_mb in [16, 16384], output_chars in [1, 10**6]")
    return _runner.run(source, timeout, memory_mb, output_chars)


def prestart() -> None:
    """Start the zygote now (without waiting for it), so that the first run does not wait for torch's import."""
    _runner.prestart()


def _run_unchecked(source: str, timeout: float = TIMEOUT, memory_mb: int = MEMORY_MB, output_chars: int = OUTPUT_CHARS) -> Result:
    """For the tests of the second layer only: run `source` WITHOUT the whitelist and with Python's full builtins,
    as if check() had been bypassed, to show what the process limits alone hold. Never called by the app."""
    return _runner.run(source, timeout, memory_mb, output_chars, unchecked=True)


def _stopped(kind: str, timeout: float, memory_mb: int, output_chars: int) -> str:
    return {
        "cpu": f"Stopped at the time limit: it computed for more than {timeout:g} s (an endless loop?).",
        "wall": f"Stopped at the time limit: no answer within {timeout + GRACE:g} s.",
        "memory": f"Stopped at the memory limit: it asked for more than the {memory_mb} MB a run may use.",
        "output": f"Stopped at the output limit: it printed more than {output_chars:,} characters; the first "
        f"{output_chars:,} are shown.",
        "flood": "Stopped at the output limit: it wrote more than the server reads.",  # only past print's cap
        "crash": "Stopped: the run ended without an answer (most likely it ran out of memory).",
    }[kind]


class _Starting(Exception):
    pass


class _Runner:
    """The server's side: starts the zygote, sends it requests, reads answers with a deadline and a byte cap."""

    def __init__(self):
        self._lock = threading.Lock()  # the zygote's control socket: one request at a time (each takes ~1 ms)
        self._slots = threading.BoundedSemaphore(SLOTS)
        self._proc: subprocess.Popen | None = None
        self._sock: socket.socket | None = None
        self._ready = False

    def prestart(self) -> None:
        if self._lock.acquire(blocking=False):
            try:
                if self._proc is None:
                    self._start()
            finally:
                self._lock.release()

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = {
            "LANG": "C.UTF-8",
            "PATH": "/usr/bin:/bin",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "CUDA_VISIBLE_DEVICES": "",  # no GPU: a snippet's memory is what RLIMIT_AS bounds
        }  # and nothing of the server's: no CLASSROOM_TOKEN, no paths
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-B", os.path.abspath(__file__), "--zygote", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                env=env,
                cwd="/",
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: Ctrl-C to the server is not its, killpg reaches its children
            )
        finally:
            theirs.close()
        self._sock, self._ready = ours, False

    def _stop(self) -> None:
        if self._sock is not None:
            self._sock.close()  # the zygote exits when its socket closes
        if self._proc is not None:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)  # it and any child still running
            except ProcessLookupError:
                pass
            self._proc.wait()
        self._proc, self._sock, self._ready = None, None, False

    def _wait_ready(self) -> None:
        assert self._sock is not None
        self._sock.settimeout(STARTUP_TIMEOUT)
        message = self._sock.recv(4096)
        if message != b"ready":
            raise OSError(message.decode("utf-8", "replace") or "the zygote exited")
        self._ready = True

    def _submit(self, request: dict, result_w: int) -> int:
        """Send one request with the child's result pipe; the child's pid. Restarts a dead zygote once."""
        data = json.dumps(request).encode()
        with self._lock:
            for attempt in (1, 2):
                try:
                    if self._proc is None or self._proc.poll() is not None:
                        self._stop()
                        self._start()
                    if not self._ready:
                        try:
                            self._wait_ready()
                        except TimeoutError:  # still importing torch: keep it, let the student try again
                            raise _Starting() from None
                    assert self._sock is not None
                    self._sock.settimeout(10.0)
                    socket.send_fds(self._sock, [data], [result_w])
                    return int(self._sock.recv(64))
                except (OSError, ValueError):
                    self._stop()
                    if attempt == 2:
                        raise
        raise AssertionError("unreachable")

    def _kill(self, pid: int) -> None:
        """Ask the zygote to SIGKILL its child: it knows whether pid is still its unreaped child (no pid reuse)."""
        with self._lock:
            try:
                assert self._sock is not None
                self._sock.send(json.dumps({"op": "kill", "pid": pid}).encode())
            except (OSError, AssertionError):
                self._stop()  # no zygote to ask: kill its whole process group

    def run(self, source: str, timeout: float, memory_mb: int, output_chars: int, unchecked: bool = False) -> Result:
        start = time.monotonic()
        if not self._slots.acquire(timeout=1.0):
            return Result(
                error=f"The class is running {SLOTS} snippets already: try again in a moment.", seconds=time.monotonic() - start
            )
        try:
            request = {"op": "run", "source": source, "timeout": timeout, "memory_mb": memory_mb,
                       "output_chars": output_chars, "unchecked": unchecked}  # fmt: skip
            result_r, result_w = os.pipe()
            try:
                try:
                    pid = self._submit(request, result_w)
                finally:
                    os.close(result_w)
                answer, status, overrun = _read(result_r, time.monotonic() + timeout + GRACE, 6 * output_chars + 65536)
            finally:
                os.close(result_r)
            if overrun:
                self._kill(pid)
                kind = "wall" if overrun == "time" else "flood"
                return Result(killed_reason=_stopped(kind, timeout, memory_mb, output_chars), seconds=time.monotonic() - start)
            return _result(answer, status, timeout, memory_mb, output_chars, time.monotonic() - start)
        except _Starting:
            return Result(
                error="The code runner is still starting: try again in a few seconds.", seconds=time.monotonic() - start
            )
        except (OSError, ValueError) as e:
            return Result(error=f"The code runner could not start: {e}", seconds=time.monotonic() - start)
        finally:
            self._slots.release()


def _read(fd: int, deadline: float, cap: int) -> tuple[dict | None, int | None, str]:
    """(the child's answer, its exit status from the zygote's trailer, "time"/"output" on overrun or "")."""
    buffer = bytearray()
    poller = select.poll()  # not select(): a busy server's descriptors may be past select's 1024
    poller.register(fd, select.POLLIN)
    while True:
        if b"\n" in buffer:
            line, _, rest = bytes(buffer).partition(b"\n")
            if line.startswith(b"R"):
                try:
                    return json.loads(line[1:]), None, ""
                except ValueError:
                    return None, None, ""
            if line.startswith(b"X"):
                try:
                    return None, int(line[1:]), ""
                except ValueError:
                    return None, None, ""
            buffer = bytearray(rest)
            continue
        left = deadline - time.monotonic()
        if left <= 0:
            return None, None, "time"
        if not poller.poll(max(1, math.ceil(left * 1000))):
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return None, None, ""  # closed without a word: the zygote died with it
        buffer += chunk
        if len(buffer) > cap:
            return None, None, "output"


def _result(answer: dict | None, status: int | None, timeout: float, memory_mb: int, output_chars: int, seconds: float) -> Result:
    """The child's answer as a Result; its fields are checked like any input (a child is not trusted)."""
    if not isinstance(answer, dict):
        kind = "crash"
        if status is not None and os.WIFSIGNALED(status) and os.WTERMSIG(status) in (signal.SIGXCPU, signal.SIGKILL):
            kind = "cpu"  # SIGKILL: the hard CPU limit, one second past the soft one the handler did not get to
        return Result(killed_reason=_stopped(kind, timeout, memory_mb, output_chars), seconds=seconds)

    def text(key: str, limit: int) -> str:
        value = answer.get(key)
        return value[:limit] if isinstance(value, str) else ""

    stopped = text("stopped", 10)
    reason = _stopped(stopped, timeout, memory_mb, output_chars) if stopped in ("cpu", "memory", "output") else ""
    return Result(text("stdout", output_chars), text("error", 2000), reason, seconds)


_runner = _Runner()
atexit.register(_runner.close)


# -- the zygote and its children (run as `python -I -B sandbox.py --zygote FD`) -----------------------------------
class _OutputFull(BaseException):
    pass


class _CPULimit(BaseException):
    pass


def _zygote(fd: int) -> None:
    """Import torch once, then fork a child per request; reap children and append their exit status."""
    sock = socket.socket(fileno=fd)
    try:
        global np, torch
        import numpy as np
        import torch

        torch.set_num_threads(1)
        torch.set_num_interop_threads(1)
        _warm_up()
    except BaseException as e:  # noqa: BLE001 - tell the server why, then exit
        sock.send(f"could not import torch: {e!r}"[:1000].encode())
        return
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: dict[int, int] = {}  # pid -> its result pipe (kept open for the exit-status trailer)
    sock.send(b"ready")
    while True:
        readable = select.select([sock, wake_r], [], [])[0]
        if wake_r in readable:
            while True:
                try:
                    if not os.read(wake_r, 512):
                        break
                except BlockingIOError:
                    break
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            out = children.pop(pid, None)
            if out is not None:
                try:
                    os.set_blocking(out, False)  # a pipe a child filled must not stall the zygote
                    os.write(out, b"X%d\n" % status)
                except OSError:  # the server stopped reading (it had the answer, or gave up), or the pipe is full
                    pass
                os.close(out)
        if sock in readable:
            message, fds, _, _ = socket.recv_fds(sock, 1 << 16, 1)
            if not message:  # the server is gone
                for pid in children:
                    os.kill(pid, signal.SIGKILL)
                return
            request = json.loads(message)
            if request.get("op") == "kill":
                if request.get("pid") in children:
                    os.kill(request["pid"], signal.SIGKILL)
                continue
            out = fds[0]
            try:
                pid = os.fork()
            except OSError:  # no memory or processes left: the server reads an empty answer ("ended without an answer")
                os.close(out)
                sock.send(b"0")
                continue
            if pid == 0:
                try:
                    _child(request, out)
                finally:
                    os._exit(0)
            children[pid] = out
            sock.send(str(pid).encode())


def _warm_up() -> None:
    """What snippets commonly reach, done once before any fork: numpy and torch import some modules on first use
    (numpy.random, ...), and a child dropped from root to nobody may not be able to read them (a Python under
    /root). One thread, and it stays one (the environment sets the BLAS pools to one): forks of it are safe."""
    import numpy.random  # noqa: F401

    torch.manual_seed(0)
    np.random.seed(0)
    with warnings.catch_warnings(record=True):
        x = torch.rand(3, requires_grad=True)
        layer = torch.nn.Linear(3, 2)
        y = torch.nn.functional.softmax(layer(x), 0)
        loss = torch.nn.functional.cross_entropy(layer(x)[None], torch.tensor([1])) + torch.nn.functional.mse_loss(y, y.detach())
        loss.backward()
        with torch.no_grad():
            str(x * 2)
        str(x.grad), str(y.grad_fn.name()), str(np.eye(2)), np.random.rand(2), torch.allclose(x, x)
        str(torch.from_numpy(np.zeros(2)).numpy()), np.shares_memory(np.zeros(1), np.zeros(1))
        str((torch.arange(12).reshape(3, 4)[1:, ::2] @ torch.ones(2, 2, dtype=torch.int64)).tolist())


def _child(request: dict, out: int) -> None:
    """Limit this process for good, run the snippet in a fresh namespace, write one answer line to `out`."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    if out != 3:
        os.dup2(out, 3)  # the result pipe becomes fd 3: with 0-2 (/dev/null) every descriptor below the limit is taken
    os.closerange(4, 1 << 20)  # the control socket among them: the snippet cannot talk to the zygote
    if os.geteuid() == 0:  # root could raise its own limits: become nobody first
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
    timeout, memory_mb, limit = float(request["timeout"]), int(request["memory_mb"]), int(request["output_chars"])
    cpu = max(1, math.ceil(timeout))  # a fresh fork has used no CPU time yet
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))  # SIGXCPU at the soft limit, SIGKILL a second later
    resource.setrlimit(resource.RLIMIT_AS, (_address_space() + memory_mb * 2**20,) * 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (4, 4))  # fds 0-3 are open: no file, socket or pipe can be opened
    answer = _execute(request["source"], limit, bool(request.get("unchecked")))
    try:
        line = b"R" + json.dumps(answer).encode() + b"\n"
    except MemoryError:
        line = b'R{"stopped": "memory"}\n'
    _write_all(3, line)


def _address_space() -> int:
    with open("/proc/self/status") as status:
        for row in status:
            if row.startswith("VmSize:"):
                return int(row.split()[1]) * 1024
    return 4 * 2**30


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _execute(source: str, limit: int, unchecked: bool) -> dict:
    parts: list[str] = []
    size = 0

    def capped_print(*args, sep=" ", end="\n"):
        nonlocal size
        sep = " " if sep is None else sep
        end = "\n" if end is None else end
        if not isinstance(sep, str) or not isinstance(end, str):
            raise TypeError("print's sep and end must be text")
        text = sep.join(str(a) for a in args) + end
        if size + len(text) > limit:
            parts.append(text[: limit - size])
            size = limit
            raise _OutputFull
        parts.append(text)
        size += len(text)

    def on_cpu_limit(*_):
        signal.signal(signal.SIGXCPU, signal.SIG_IGN)
        raise _CPULimit

    stopped, error = "", ""
    namespace = None
    try:
        if not unchecked:
            check(source)  # again, here: the server checked it, but this process does not rely on that
        code = compile(source, "<your code>", "exec")
        safe = {name: getattr(builtins, name) for name in BUILTINS}
        safe["print"] = capped_print
        everything = dict(builtins.__dict__, print=capped_print)  # unchecked: Python's own builtins (tests only)
        namespace = {"__builtins__": everything if unchecked else safe, "torch": torch, "np": np, "numpy": np}
        torch.manual_seed(0)
        np.random.seed(0)
        signal.signal(signal.SIGXCPU, on_cpu_limit)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            exec(code, namespace)  # in this limited child only, never in the server
        for w in caught:
            capped_print(f"{w.category.__name__}: {str(w.message).splitlines()[0] if str(w.message) else ''}")
    except _CPULimit:
        stopped = "cpu"
    except _OutputFull:
        stopped = "output"
    except MemoryError:
        stopped, error = "memory", "MemoryError: out of memory"
    except Refused as e:
        error = str(e)
    except BaseException as e:  # noqa: BLE001 - the student's error, shown to them
        error = _describe(e)
        if "can't allocate memory" in error or "not enough memory" in error:
            stopped = "memory"
    finally:
        if namespace is not None:
            namespace.clear()  # free the snippet's tensors before the answer is written
    return {"stdout": "".join(parts), "error": error[:2000], "stopped": stopped}


def _describe(e: BaseException) -> str:
    """`line 3: RuntimeError: first lines of the message` (the snippet's line, from the traceback)."""
    line = None
    tb = e.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<your code>":
            line = tb.tb_lineno
        tb = tb.tb_next
    message = "\n".join(str(e).splitlines()[:6])
    where = f"line {line}: " if line else ""
    return f"{where}{type(e).__name__}: {message}" if message else f"{where}{type(e).__name__}"


if __name__ == "__main__" and sys.argv[1:2] == ["--zygote"]:
    _zygote(int(sys.argv[2]))
