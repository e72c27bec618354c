"""classroom.sandbox and the "Edit and run" box: every refusal of the whitelist, every limit of the worker process,
what the lessons' blocks print there, and the server left as it was."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from classroom import lessons, sandbox
from classroom.sandbox import Refused
from tests.markdown import shown

ROOT = Path(__file__).resolve().parent.parent

# (snippet, words the refusal must hold, the line it must name)
REFUSED = {
    "import": ("x = 1\nimport os", "imports are not allowed", 2),
    "from-import": ("from os import system", "imports are not allowed", 1),
    "__class__": ("x = ().__class__", "attributes starting with _ are not allowed (__class__)", 1),
    "__subclasses__-chain": ("torch.tensor(1).__class__.__base__.__subclasses__()", "(__subclasses__)", 1),
    "private-attribute": ("x = torch.zeros(2)\nx._base", "attributes starting with _", 2),
    "__import__": ("__import__('os')", "names with __ are not allowed", 1),
    "__builtins__": ("print(__builtins__)", "names with __ are not allowed", 1),
    "getattr": ("getattr(torch, 'zeros')", "getattr is not available", 1),
    "open": ("open('/etc/passwd')", "open is not available", 1),
    "eval": ("eval('1 + 1')", "eval is not available", 1),
    "exec": ("exec('x = 1')", "exec is not available", 1),
    "compile": ("compile('1', 'f', 'eval')", "compile is not available", 1),
    "type": ("print(type(torch.zeros(1)))", "type is not available", 1),
    "globals": ("print(globals())", "globals is not available", 1),
    "vars": ("print(vars())", "vars is not available", 1),
    "breakpoint": ("breakpoint()", "breakpoint is not available", 1),
    "lambda": ("f = lambda x: x * 2", "lambda is not allowed", 1),
    "def": ("def f(x):\n    return x", "def is not allowed", 1),
    "async-def": ("async def f():\n    pass", "def is not allowed", 1),
    "class": ("class A:\n    pass", "class is not allowed", 1),
    "dunder-in-a-string": ("x = torch.zeros(1)\nprint(x, '__class__')", "text with __ in it is not allowed", 2),
    "dunder-in-format": ("print('{0.__class__}'.format(1))", ".format is not on the list", 1),
    "attribute-not-listed": ("torch.zeros(2).storage()", ".storage is not on the list", 1),
    "ctypes": ("torch.zeros(2).numpy().ctypes", ".ctypes is not on the list", 1),
    "hook": ("x = torch.ones(1, requires_grad=True)\n(x * 2).grad_fn.register_hook(print)", ".register_hook", 2),
    "torch.load": ("torch.load('x.pt')", "torch.load is not on the list", 1),
    "torch.save": ("torch.save(torch.zeros(1), 'x.pt')", "torch.save is not on the list", 1),
    "np.load": ("np.load('x.npy')", "np.load is not on the list", 1),
    "numpy.ctypeslib": ("numpy.ctypeslib", "numpy.ctypeslib is not on the list", 1),
    "torch-as-a-value": ("t = torch", "torch can only be used to call its listed functions", 1),
    "np-passed": ("print(np)", "np can only be used", 1),
    "shadow-torch": ("torch = 1", "pick another", 1),
    "shadow-print": ("print = 2", "pick another", 1),
    "change-torch": ("torch.zeros = print", "torch's own names cannot be changed", 1),
    "unsettable-attribute": ("x = torch.zeros(1)\nx.data = torch.ones(1)", "only .grad and .requires_grad", 2),
    "list-comprehension": ("x = [i for i in range(3)]", "comprehensions are not allowed", 1),
    "generator": ("print(sum(i for i in range(3)))", "comprehensions are not allowed", 1),
    "with-open": ("with open('x') as f:\n    pass", "the only `with` allowed", 1),
    "with-as": ("with torch.no_grad() as g:\n    pass", "the only `with` allowed", 1),
    "global": ("x = 1\nglobal x", "global is not allowed", 2),
    "nonlocal": ("nonlocal x", "nonlocal is not allowed", 1),
    "try": ("try:\n    x = 1\nexcept Exception:\n    pass", "try is not allowed", 1),
    "raise": ("raise ValueError", "raise is not allowed", 1),
    "del": ("x = 1\ndel x", "del is not allowed", 2),
    "assert": ("assert 1", "assert is not allowed", 1),
    "await": ("await x", "await is not allowed", 1),
    "yield": ("x = yield", "yield is not allowed", 1),
    "walrus": ("print(y := 2)", ":= is not allowed", 1),
    "match": ("match 1:\n    case 1:\n        pass", "Match is not allowed", 1),
    "dict": ("x = {'a': 1}", "dictionaries are not allowed", 1),
    "set": ("x = {1, 2}", "sets are not allowed", 1),
    "star": ("print(*[1, 2])", "* unpacking is not allowed", 1),
    "double-star": ("torch.zeros(2, **x)", "** unpacking is not allowed", 1),
    "shift": ("print(1 << 100000)", "<< is not allowed", 1),
    "power-tower": ("print(10 ** 10 ** 10)", "a power in an exponent", 1),
    "huge-exponent": ("print(2 ** 100000)", "exponents beyond 1000", 1),
    "huge-integer": ("x = 10000000000000000000000", "integers beyond", 1),
    "long-string": ("x = '" + "a" * 1001 + "'", "strings longer than 1000", 1),
    "bytes": ("x = b'abc'", "bytes literals are not allowed", 1),
    "call-of-a-subscript": ("x = [print]\nx[0]('hi')", "only functions and methods may be called", 2),
    "loop-over-an-attribute": ("x = torch.zeros(1)\nfor x.grad in range(2):\n    pass", "must be a name", 2),
    "f-string-dunder": ("print(f'{print.__self__}')", "(__self__)", 1),
    "too-long": ("x = 1\n" * 700, "longer than 4,000 characters", None),
    "too-deep": ("x = " + "[" * 50 + "]" * 50, "nested more than 40 levels", 1),
    "deeper-than-the-parser": ("x = " + "-" * 3990 + "1", "nested more than 40 levels", None),
    "syntax-error": ("x = (1 +", "Python cannot read this", 1),
    "NUL-byte": ("print(1)\x00", "Python cannot read this", None),
}


@pytest.mark.parametrize("source, words, line", REFUSED.values(), ids=REFUSED.keys())
def test_every_construct_off_the_whitelist_is_refused_naming_it_and_its_line(source, words, line):
    with pytest.raises(Refused) as refused:
        sandbox.check(source)
    assert words in refused.value.reason and refused.value.line == line
    with pytest.raises(Refused):  # run() checks first: nothing is sent to the worker
        sandbox.run(source)


ALLOWED = [
    "x = torch.arange(12).reshape(3, 4)\nprint(x[1:, ::2], x[x > 6], x.T.shape, x.float().mean().item())",
    "x = torch.tensor(3.0, requires_grad=True)\ny = x ** 2 + 2 * x\ny.backward()\nprint(x.grad, y.grad_fn.name())",
    "w = torch.ones(2, requires_grad=True)\nwith torch.no_grad():\n    w -= 0.1 * w\nw.grad = None\nprint(w)",
    "total = 0\nfor i, v in enumerate(range(5)):\n    if i % 2 == 0 and v != 4:\n        total += v\nprint(f'{total:.2f}')",
    "a = np.zeros(3)\nt = torch.from_numpy(a)\na[0] = 7\nprint(t, np.shares_memory(a, t.numpy()))",
    "layer = torch.nn.Linear(3, 2)\nprint(torch.nn.functional.relu(layer(torch.rand(4, 3))).shape, layer.weight.shape)",
    "n = 0\nwhile n < 3:\n    n += 1\nprint(n, 2 ** 0.5, 2 ** -3, n ** n, 'big' if n > 2 else 'small')",
]


@pytest.mark.parametrize("source", ALLOWED)
def test_lesson_style_snippets_pass_the_check(source):
    sandbox.check(source)


def editable_blocks(slug: str) -> list[tuple[str, lessons.Output]]:
    """(the block as the box offers it, what the lesson printed) for each block on the whitelist."""
    lesson = lessons.load(slug)
    outputs = lessons.run(lesson)
    blocks = [(sandbox.editable(b.source), out) for b, out in zip(lesson.code_blocks, outputs)]
    return [(code, out) for code, out in blocks if code is not None]


@pytest.mark.parametrize("slug, at_least", [("02_tensors", 5), ("03_autograd", 3)])
def test_the_lessons_blocks_run_in_the_sandbox_and_print_what_the_lesson_prints(slug, at_least):
    blocks = editable_blocks(slug)
    assert len(blocks) >= at_least  # a whitelist grown too strict would silently take the boxes away
    for code, out in blocks:
        assert "import" not in code  # torch and np are already there
        result = sandbox.run(code)
        assert (result.stdout, result.error, result.killed_reason) == (out.stdout, "", ""), code


def test_blocks_off_the_whitelist_get_no_box():
    assert sandbox.editable("x = 1\ntry:\n    y = 2\nexcept Exception:\n    pass") is None
    assert sandbox.editable("import torch\nimport numpy as np\n\nprint(torch.ones(1))") == "print(torch.ones(1))"


def test_an_error_names_its_line_and_type():
    result = sandbox.run("x = torch.zeros(3)\ny = x @ torch.zeros(4)")
    assert result.error.startswith("line 2: RuntimeError:") and not result.killed_reason
    assert sandbox.run("print(undefined_name)").error == "line 1: NameError: name 'undefined_name' is not defined"


def test_an_endless_loop_is_stopped_at_the_cpu_time_limit():
    result = sandbox.run("x = 0\nwhile True:\n    x = 1", timeout=1)
    assert result.killed_reason.startswith("Stopped at the time limit: it computed for more than 1 s")
    assert result.seconds < 1 + sandbox.GRACE + 1
    result = sandbox.run("m = torch.rand(1000, 1000)\nwhile True:\n    m = (m @ m).clamp(0, 1)", timeout=1)
    assert result.killed_reason.startswith("Stopped at the time limit")


def test_memory_bombs_fail_cleanly_at_the_memory_limit():
    for bomb in ("x = torch.zeros(10 ** 10)", "x = 'a' * 10 ** 9", "x = list(range(10 ** 8))", "x = np.ones(10 ** 9)"):
        result = sandbox.run(bomb)
        assert result.killed_reason.startswith("Stopped at the memory limit"), (bomb, result)
    assert sandbox.run("x = torch.zeros(10 ** 6)\nprint(x.shape)").stdout == "torch.Size([1000000])\n"  # and it lives on


def test_a_print_flood_is_cut_and_said_so():
    result = sandbox.run("while True:\n    print('spam')", output_chars=1000)
    assert len(result.stdout) == 1000 and result.stdout.startswith("spam\nspam\n")
    assert "output limit" in result.killed_reason and "1,000" in result.killed_reason
    result = sandbox.run("print('x' * 999)\nprint('y')", output_chars=1000)
    assert result.stdout == "x" * 999 + "\n" and "output limit" in result.killed_reason


def test_the_server_is_left_as_it_was():
    """A snippet changes its own process only: seeds, thread counts, names and files of the server stay."""
    threads, rng, np_rng = torch.get_num_threads(), torch.random.get_rng_state(), np.random.get_state()[1].copy()
    environ, cwd, timeout = dict(os.environ), os.getcwd(), sandbox.TIMEOUT
    files = set(os.listdir("/"))  # the worker's directory (it can open no file anywhere: see the bypass test)
    result = sandbox.run("torch.manual_seed(123)\nnp.random.seed(5)\nTIMEOUT = 0\nx = torch.rand(1000)\nprint(x.sum() > 0)")
    assert result.stdout == "tensor(True)\n"
    assert torch.get_num_threads() == threads and torch.equal(torch.random.get_rng_state(), rng)
    assert (np.random.get_state()[1] == np_rng).all()
    assert (dict(os.environ), os.getcwd(), sandbox.TIMEOUT) == (environ, cwd, timeout)
    assert set(os.listdir("/")) == files


def test_each_run_starts_fresh():
    sandbox.run("secret = torch.tensor(42)")
    assert "NameError" in sandbox.run("print(secret)").error


def test_at_most_slots_snippets_run_at_once():
    results = []

    def endless():
        results.append(sandbox.run("while True:\n    x = 1", timeout=2))

    threads = [threading.Thread(target=endless) for _ in range(sandbox.SLOTS + 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    busy = [r for r in results if "try again in a moment" in r.error]
    assert len(busy) == 1 and busy[0].seconds < 2.5  # told after a second, not kept waiting
    assert sum("time limit" in r.killed_reason for r in results) == sandbox.SLOTS


# -- the second layer on its own: as if the whitelist had been bypassed (Python's full builtins, no check) ---------


def test_if_the_check_were_bypassed_the_process_limits_still_hold(monkeypatch):
    monkeypatch.setenv("CLASSROOM_TOKEN", "the-class-secret")
    sandbox._runner.close()  # a zygote started now, from a server environment that holds the token

    def unchecked(source: str, **limits) -> sandbox.Result:
        return sandbox._run_unchecked(source, **limits)

    assert unchecked("import os\nprint(sorted(os.environ))").stdout == (
        "['CUDA_VISIBLE_DEVICES', 'LANG', 'MKL_NUM_THREADS', 'OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'PATH']\n"
    )
    path = Path(tempfile.gettempdir()) / f"sandbox-probe-{os.getpid()}"
    assert "Too many open files" in unchecked(f"open({str(path)!r}, 'w').write('x')").error  # RLIMIT_NOFILE
    assert not path.exists()
    assert "Too many open files" in unchecked("print(open('/etc/hostname').read())").error
    assert "Too many open files" in unchecked("import socket\nsocket.socket()").error
    assert "Bad file descriptor" in unchecked("import os\nos.fstat(4)").error  # the zygote's socket is closed
    assert "Resource temporarily unavailable" in unchecked("import os\nos.fork()").error  # RLIMIT_NPROC
    assert (
        "not allowed to raise maximum limit"
        in unchecked("import resource\nresource.setrlimit(resource.RLIMIT_CPU, (1000, 1000))").error
    )  # hard limits, and not root (a root server's child becomes nobody)
    assert unchecked("import os\nprint(os.geteuid() != 0)").stdout == "True\n"
    assert "memory limit" in unchecked("x = bytearray(2 * 1024 ** 3)").killed_reason
    assert "time limit" in unchecked("while True:\n    pass", timeout=1).killed_reason
    start = time.monotonic()
    slept = unchecked("import time\ntime.sleep(60)", timeout=1)  # no CPU used: the server's clock stops it
    assert slept.killed_reason == f"Stopped at the time limit: no answer within {1 + sandbox.GRACE:g} s."
    assert time.monotonic() - start < 1 + sandbox.GRACE + 1.5
    flood = unchecked("import os\nwhile True:\n    os.write(3, b'R' * 65536)", output_chars=100)  # past print's cap
    assert "output limit" in flood.killed_reason


def test_a_dead_worker_is_replaced_on_the_next_run():
    assert sandbox.run("print(1)").stdout == "1\n"
    zygote = sandbox._runner._proc
    assert zygote is not None
    zygote.kill()
    zygote.wait()
    assert sandbox.run("print(2)").stdout == "2\n"


# -- the box on the lesson page ---------------------------------------------------------------------------------------


@pytest.fixture
def no_runs(monkeypatch, tmp_path):
    from ui import state

    manager = SimpleNamespace(list=lambda: [], checkpoint_path=lambda _: None, active_run=lambda _: None, loading=set)
    monkeypatch.setattr(state, "manager", lambda: manager)
    monkeypatch.setenv("CLASSROOM_DATA_DIR", str(tmp_path / "data"))


def test_the_tensor_lesson_edits_and_runs_a_block_and_shows_a_refusal(no_runs):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page("pages/lesson_2_tensors.py").run()
    assert not at.exception and not at.error
    assert len([e for e in at.expander if e.label == "Edit and run"]) == len(editable_blocks("02_tensors"))
    box = at.text_area(key="02_tensors-edit1-code")
    assert box.value.startswith("print(torch.zeros(2, 3))")  # the first block, its imports dropped
    box.input("x = torch.arange(4)\nprint(x * 10)")
    at.button(key="02_tensors-edit1-run").click().run()
    assert "tensor([ 0, 10, 20, 30])" in [c.value for c in at.code] and not at.error
    at.text_area(key="02_tensors-edit1-code").input("import os\nprint(os.listdir('/'))")
    at.button(key="02_tensors-edit1-run").click().run()
    assert [shown(e.value) for e in at.error] == ["Not run, line 1: imports are not allowed (torch and np are already there)"]
    at.text_area(key="02_tensors-edit1-code").input("print(undefined_name)")
    at.button(key="02_tensors-edit1-run").click().run()
    assert [shown(e.value) for e in at.error] == ["line 1: NameError: name 'undefined_name' is not defined"]


def test_one_run_at_a_time_per_browser(monkeypatch):
    from ui import edit_run, state

    monkeypatch.setattr(state, "owner", lambda: "browser-1")
    monkeypatch.setattr(edit_run, "_running", {"browser-1"})  # its first run still going (another tab)
    kind, message = edit_run._run("print(1)")
    assert kind == "busy" and "still going" in message
