"""The holes a probe of a classroom server found, each closed: a client's clear_cache, other students' runs,
token guessing, browser ids, and the HTTP side (downloads, metrics)."""

from __future__ import annotations

import asyncio
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from classroom import data
from classroom.config import TrainConfig
from classroom.runs import NotYours, RunManager, RunRefused
from ui import access, gate, state

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TOKEN, TEACHER = "class-token", "teacher-token"
LONG = TrainConfig(model="net", data="shapes", batch_size=16, lr=0.01, epochs=200, max_steps=50, log_interval=5, device="cpu")


@pytest.fixture(scope="module")
def small_shapes():
    return data.make_shapes(n_train=640, n_test=128)


@pytest.fixture(autouse=True)
def server_env(monkeypatch, tmp_path, small_shapes):
    """A server process of our own: runs under tmp_path, a fresh door, small shapes; its runs stopped after."""
    monkeypatch.setenv("CLASSROOM_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("CLASSROOM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("CLASSROOM_TOKEN", raising=False)
    monkeypatch.delenv("CLASSROOM_INSTRUCTOR_TOKEN", raising=False)
    monkeypatch.setattr(access, "WRONG_TOKEN_DELAY", 0.05)
    real_load = data.load
    monkeypatch.setattr(data, "load", lambda source, *a, **k: small_shapes if source == "shapes" else real_load(source, *a, **k))
    state.manager.clear()
    yield
    state.manager().shutdown()
    state.manager.clear()


def wait_for(predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    return value


# --- 1. a client's clear_cache ------------------------------------------------------------------


def clear_cache_message() -> None:
    """What Streamlit does for any websocket client's clear_cache back-message (AppSession._handle_clear_cache_request)."""
    st.cache_data.clear()
    st.cache_resource.clear()


def test_a_clients_clear_cache_leaves_the_class_state_alone(monkeypatch):
    from classroom import timing
    from ui import devices

    monkeypatch.setenv("CLASSROOM_MAX_RUNS_PER_DEVICE", "1")
    mgr = state.manager()
    first = mgr.submit(LONG, owner="a" * 32)
    wait_for(lambda: mgr.get(first).status == "running")
    mgr.feature(first)
    devices._class_measurement.clear()
    calls = []
    monkeypatch.setattr(timing, "measure", lambda **kw: calls.append(kw) or [])
    devices._class_measurement()
    for _ in range(3):
        clear_cache_message()
    assert state.manager() is mgr  # not rebuilt from disk
    snap = state.manager().get(first)
    assert snap.status == "running" and snap.featured  # not "interrupted", still featured
    second = state.manager().submit(LONG, owner="b" * 32)
    assert state.manager().get(second).status == "queued"  # one slot per device still holds
    devices._class_measurement()
    assert len(calls) == 1  # the class's timing is not taken again


# --- 2. other students' runs ------------------------------------------------------------------------


def test_only_the_owner_pauses_resumes_and_stops_and_the_instructor_may_stop(tmp_path):
    mgr = RunManager(tmp_path / "own")
    try:
        alice, bob = "a" * 32, "b" * 32
        run = mgr.submit(LONG, owner=alice)
        wait_for(lambda: mgr.get(run).status == "running")
        for control in (lambda: mgr.pause(run, by=bob), lambda: mgr.stop(run, by=bob)):
            with pytest.raises(NotYours):
                control()
        assert mgr.get(run).status == "running"
        with pytest.raises(NotYours):
            mgr.pause(run, by=bob)  # (not even the instructor pauses: that is the student's)
        mgr.pause(run, by=alice)
        assert mgr.get(run).status == "paused"
        with pytest.raises(NotYours):
            mgr.resume(run, by=bob)
        mgr.resume(run, by=alice)
        assert mgr.get(run).status == "running"
        mgr.stop(run, by=bob, instructor=True)
        assert mgr.wait(run, 60).status == "stopped"
    finally:
        mgr.shutdown()


def runs_page(run_id: str, browser: str | None = None, **query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    if browser:
        at.session_state[access.BROWSER] = browser  # this AppTest session's browser id (no cookie in AppTest)
    at.query_params.update({"run": run_id, **query})
    at.switch_page("pages/runs.py").run()
    assert not at.exception
    return at


def control_labels(at: AppTest) -> set[str]:
    return {b.label for b in at.button} & {"Pause", "Resume", "Stop"}


def test_a_run_shows_its_controls_to_its_owner_and_stop_to_the_instructor_only(monkeypatch):
    monkeypatch.setenv("CLASSROOM_TOKEN", TOKEN)
    monkeypatch.setenv("CLASSROOM_INSTRUCTOR_TOKEN", TEACHER)
    owner = "c" * 32
    run = state.manager().submit(LONG, owner=owner)
    wait_for(lambda: state.manager().get(run).status == "running")
    assert control_labels(runs_page(run, token=TOKEN)) == set()  # another student
    assert control_labels(runs_page(run, browser=owner, token=TOKEN)) == {"Pause", "Stop"}
    assert control_labels(runs_page(run, token=TEACHER)) == {"Stop"}
    state.manager().feature(run)  # featured on every lab page: still no controls for others
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["token"] = TOKEN
    at.switch_page("pages/lab.py").run()
    assert not at.exception and any("Featured run" in h.value for h in at.subheader) and control_labels(at) == set()
    assert state.manager().get(run).status == "running"


def test_with_only_a_class_token_nobody_is_the_instructor(monkeypatch):
    monkeypatch.setenv("CLASSROOM_TOKEN", TOKEN)
    run = state.manager().submit(LONG, owner="d" * 32)
    wait_for(lambda: state.manager().get(run).status == "running")
    assert control_labels(runs_page(run, token=TOKEN)) == set()
    assert access.role_of(TOKEN) == "student"


# --- 6. token guessing ------------------------------------------------------------------------------


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_three_hundred_sessions_get_about_thirty_guesses_a_minute():
    clock = FakeClock()
    limiter = gate.SignInLimiter(per_address=(5, 12.0), whole_server=(30, 2.0), clock=clock)
    checked = 0
    for second in range(600):  # ten minutes, every one of 300 sessions (on 30 addresses) trying every second
        clock.now = 1000.0 + second
        for session in range(300):
            if limiter.take(f"10.0.0.{session % 30}") == 0:
                checked += 1  # this guess reaches the comparison (and is wrong)
    per_minute = checked / 10
    assert 25 <= per_minute <= 34  # 30 a minute and the first burst, against ~12,000 a minute with a per-session delay alone
    one = gate.SignInLimiter(per_address=(5, 12.0), whole_server=(30, 2.0), clock=clock)
    assert [one.take("1.2.3.4") == 0 for _ in range(7)] == [True] * 5 + [False] * 2  # one address: 5, then waits
    assert one.take("5.6.7.8") == 0  # another address is not held up by it
    clock.now += 12
    assert one.take("1.2.3.4") == 0  # one more try every 12 s


def test_right_tokens_do_not_count_and_a_limited_try_is_refused_unread(monkeypatch):
    monkeypatch.setenv("CLASSROOM_TOKEN", TOKEN)
    monkeypatch.setattr(gate, "limiter", gate.SignInLimiter(per_address=(3, 60.0), whole_server=(100, 1.0)))
    for _ in range(10):  # a class signing in together is never limited
        at = AppTest.from_file(APP, default_timeout=60)
        at.query_params["token"] = TOKEN
        assert any(c.value.startswith("Device:") for c in at.run().sidebar.caption)
    at = AppTest.from_file(APP, default_timeout=60).run()
    for _ in range(3):
        at.text_input[0].input("wrong")
        at.button[0].click().run()
        assert "not right" in at.error[0].value
    at.text_input[0].input(TOKEN)  # the right token, over the limit: refused without being compared
    at.button[0].click().run()
    assert "Too many wrong tokens" in at.error[0].value
    assert not any(c.value.startswith("Device:") for c in at.sidebar.caption)


def test_signed_in_pages_stay_fast_while_guessing_is_limited(monkeypatch):
    monkeypatch.setenv("CLASSROOM_TOKEN", TOKEN)
    monkeypatch.setattr(access, "WRONG_TOKEN_DELAY", 1.0)
    monkeypatch.setattr(gate, "limiter", gate.SignInLimiter(per_address=(1, 600.0), whole_server=(1, 600.0)))
    student = AppTest.from_file(APP, default_timeout=60)
    student.query_params["token"] = TOKEN
    student.run()
    attacker = AppTest.from_file(APP, default_timeout=60).run()
    attacker.text_input[0].input("guess-1")
    attacker.button[0].click().run()
    start = time.monotonic()
    attacker.text_input[0].input("guess-2")
    attacker.button[0].click().run()
    assert "Too many" in attacker.error[0].value
    assert time.monotonic() - start < 1.0  # a limited try costs the server no delay thread
    start = time.monotonic()
    student.switch_page("pages/lesson_2_tensors.py").run()
    assert not student.exception and time.monotonic() - start < 10


# --- 7. a student is a browser ----------------------------------------------------------------------


def test_a_reload_of_the_same_browser_finds_its_run_and_cannot_start_another(monkeypatch):
    monkeypatch.setenv("CLASSROOM_TOKEN", TOKEN)
    browser = "e" * 32
    run = state.manager().submit(LONG, owner=browser)
    gate.sign_ins.grant(browser, "student")  # this browser signed in before the reload
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state[access.BROWSER] = browser  # the new session of the same browser
    at.switch_page("pages/lab.py").run()
    assert not at.exception and access.LIMITED not in at.session_state
    assert not any(t.label == "Class token" for t in at.text_input)  # still signed in
    assert at.session_state["lab_run"] == run and any(h.value == "Your run" for h in at.header)
    assert next(b for b in at.button if b.label == "Start training").disabled


# --- 12. the HTTP side --------------------------------------------------------------------------------


def call(path: str, cookie: str | None = None) -> tuple[int, dict]:
    """One request through gate.Guard in front of an app that answers 200; (status, headers)."""

    async def inner(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    sent = []

    async def send(message):
        sent.append(message)

    headers = [(b"cookie", f"{gate.COOKIE}={cookie}".encode())] if cookie else []
    request = gate.Guard(inner)({"type": "http", "path": path, "headers": headers}, None, send)
    with ThreadPoolExecutor(1) as thread:  # its own event loop: Playwright's sync API keeps one running in this thread
        thread.submit(asyncio.run, request).result()
    start = sent[0]
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}


def test_every_browser_gets_an_http_only_id_and_downloads_need_a_signed_in_browser(monkeypatch):
    status, headers = call("/")
    cookie = headers["set-cookie"]
    assert status == 200 and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    browser = cookie.split(";")[0].split("=")[1]
    assert gate.valid_browser_id(browser)
    assert "set-cookie" not in call("/", cookie=browser)[1]  # kept, not replaced
    assert call("/media/abc.pt")[0] == 200  # an open app (no token): nothing to guard
    monkeypatch.setenv("CLASSROOM_TOKEN", TOKEN)
    assert call("/media/abc.pt")[0] == 403
    assert call("/media/abc.pt", cookie=browser)[0] == 403  # a browser that has not signed in
    assert call("/_stcore/metrics", cookie=browser)[0] == 403
    gate.sign_ins.grant(browser, "student")
    assert call("/media/abc.pt", cookie=browser)[0] == 200
    assert call("/_stcore/metrics", cookie=browser)[0] == 403  # the server's metrics are the instructor's
    teacher = gate.new_browser_id()
    gate.sign_ins.grant(teacher, "instructor")
    assert call("/_stcore/metrics", cookie=teacher)[0] == 200
    assert call("/media/abc.pt", cookie="x" * 40)[0] == 403  # a made-up id


# --- 3. image folders the server may read; 11. what a run may cost --------------------------------------


def lab(**query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(query)
    at.switch_page("pages/lab.py").run()
    assert not at.exception
    return at


def errors(at: AppTest) -> str:
    return " ".join(e.value for e in at.error)


def test_the_lab_reads_only_folders_in_the_allowed_roots_and_so_does_an_uploaded_checkpoint(monkeypatch, tmp_path):
    from classroom import checkpoints
    from classroom.models import build

    outside = tmp_path / "outside"
    for split in ("train", "test"):
        for name in ("a", "b"):
            (outside / split / name).mkdir(parents=True)
    at = lab()
    at.radio(key="lab.source").set_value("folder").run()
    for path in (str(outside), "/etc", f"{tmp_path}/data/../outside"):
        at.text_input(key="lab.folder").input(path).run()
        assert "outside the folders this server allows" in errors(at)
        assert next(b for b in at.button if b.label == "Start training").disabled
    reads = []
    monkeypatch.setattr(data, "load_folder", lambda *a, **k: reads.append(a))
    config = LONG.replace(data=f"folder:{outside}", epochs=1)
    raw = checkpoints.to_bytes(build("net", 2), config, ("a", "b"), {})
    at.file_uploader(key="lab.upload").upload("theirs.pt", raw).run()
    assert not at.exception and "outside the folders this server allows" in errors(at) and reads == []


def test_a_run_that_would_take_too_much_memory_is_refused_before_it_starts(monkeypatch):
    monkeypatch.setenv("CLASSROOM_MAX_RUN_MB", "2048")
    state.manager.clear()
    huge = LONG.replace(model="fast-cnn", batch_size=4096, precision="auto")
    with pytest.raises(RunRefused, match=r"would need about [\d.]+ GB .* lower the batch size to \d+ or less"):
        state.manager().submit(huge, owner="f" * 32)
    assert state.manager().list() == []
    at = lab()
    at.selectbox(key="lab.preset").set_value("fast-cnn").run()
    at.number_input(key="lab.fast-cnn.batch_size").set_value(4096).run()
    assert "would need about" in errors(at) and next(b for b in at.button if b.label == "Start training").disabled
    at.number_input(key="lab.fast-cnn.batch_size").set_value(256).run()
    assert "would need about" not in errors(at)


def test_the_middleware_drops_a_clients_clear_cache_message():
    from streamlit.proto.BackMsg_pb2 import BackMsg

    clear, rerun = BackMsg(), BackMsg()
    clear.clear_cache = True
    rerun.rerun_script.query_string = "a=1"
    incoming = [{"type": "websocket.receive", "bytes": m.SerializeToString()} for m in (clear, clear, rerun)]
    incoming.append({"type": "websocket.disconnect"})
    seen = []

    async def app(scope, receive, send):
        while (message := await receive())["type"] != "websocket.disconnect":
            parsed = BackMsg()
            parsed.ParseFromString(message["bytes"])
            seen.append(parsed.WhichOneof("type"))

    async def receive():
        return incoming.pop(0)

    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, gate.Guard(app)({"type": "websocket", "path": "/_stcore/stream"}, receive, None)).result()
    assert seen == ["rerun_script"]  # both clear_cache messages dropped, the rest delivered in order


def test_the_instructors_link_in_a_students_browser_signs_in_the_instructor_and_leaves_the_address_bar(monkeypatch):
    monkeypatch.setenv("CLASSROOM_TOKEN", TOKEN)
    monkeypatch.setenv("CLASSROOM_INSTRUCTOR_TOKEN", TEACHER)
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["token"] = TOKEN
    at.run()
    assert at.session_state[access.ROLE] == "student"
    at.query_params["token"] = TEACHER
    at.run()
    assert at.session_state[access.ROLE] == "instructor" and "token" not in at.query_params


def _call_at(text: str, start: int) -> str:
    """The call that starts at text[start] (a name, then balanced parentheses)."""
    depth, opening = 0, text.index("(", start)
    i = opening
    for i in range(opening, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            break
    return text[start : i + 1]


def test_every_torch_load_in_the_code_and_lessons_is_weights_only():
    """A pickle can run code when it is loaded: every torch.load the app, its lessons or its scripts make says
    weights_only=True (lesson 8's first draft loaded its replicas without it)."""
    root = Path(__file__).resolve().parent.parent
    files = [p for folder in ("classroom", "ui", "pages", "lessons", "bench", "scripts") for p in (root / folder).rglob("*")]
    files = [p for p in files if p.suffix in (".py", ".md")]
    offenders = [
        f"{path.relative_to(root)}: {call}"
        for path in files
        for text in [path.read_text(encoding="utf-8")]
        for match in re.finditer(r"\btorch\.load\(", text)
        if "weights_only=True" not in (call := _call_at(text, match.start()))
    ]
    assert len(files) > 50 and not offenders, offenders
