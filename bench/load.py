"""Load: a class of sessions opening pages while each starts a short run on `shapes`, against a real server.

Each session speaks Streamlit's own websocket protocol, as a browser tab does: it asks for a page, waits for
the script to finish, and while it sits on a page it polls that page's auto-refreshing fragments at their
intervals. No browser is drawn, so the times are the server's: from the request to the script's end.

    python bench/load.py                # 30 sessions, 30 runs; prints the figures BENCHMARKS.md quotes
    python bench/load.py --executor ray --ray-nodes 2   # the same class, its runs on a two-node Ray cluster here
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState
from websockets.sync.client import connect  # comes with streamlit's server (uvicorn)

ROOT = Path(__file__).resolve().parent.parent
DONE = (ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY)


class Session:
    """One browser tab: a websocket to the server, the pages it knows and the fragments its page polls."""

    def __init__(self, port: int):
        url = f"ws://127.0.0.1:{port}/_stcore/stream"
        self.ws = connect(url, subprotocols=["streamlit"], max_size=None, legacy=True)  # closed in close()
        self.pages: dict[str, str] = {}  # url path -> page script hash
        self.fragments: dict[str, float] = {}  # fragment id -> seconds between refreshes
        self.page = ""
        self.widgets: dict[str, str] = {}  # label -> widget id, on the page last shown
        self.errors: list[str] = []  # texts of st.error boxes on the page last shown
        self.exceptions: list[str] = []  # tracebacks shown anywhere: each one is a bug

    def open(self, page: str = "", widgets: tuple[WidgetState, ...] = ()) -> float:
        """Show a page (its path; "" is the default page); seconds until its script finished."""
        self.page, self.widgets, self.errors = page, {}, []
        return self._rerun(self.pages.get(page, ""), widgets, fragment="")

    def poll(self, fragment: str) -> float:
        """Refresh one fragment the way the browser's timer does; seconds until it finished."""
        return self._rerun(self.pages.get(self.page, ""), (), fragment)

    def _rerun(self, page_hash: str, widgets, fragment: str) -> float:
        msg = BackMsg()
        msg.rerun_script.page_script_hash = page_hash
        msg.rerun_script.fragment_id = fragment
        msg.rerun_script.is_auto_rerun = bool(fragment)
        msg.rerun_script.widget_states.widgets.extend(widgets)
        start, registered = time.perf_counter(), {}
        self.ws.send(msg.SerializeToString())
        while True:
            reply = ForwardMsg.FromString(self.ws.recv(timeout=120))
            kind = reply.WhichOneof("type")
            if kind == "navigation":
                self.pages = {p.url_pathname: p.page_script_hash for p in reply.navigation.app_pages}
            elif kind == "auto_rerun":
                registered[reply.auto_rerun.fragment_id] = reply.auto_rerun.interval
            elif kind == "stop_auto_rerun":
                self.fragments.pop(reply.stop_auto_rerun.fragment_id, None)
                registered.pop(reply.stop_auto_rerun.fragment_id, None)
            elif kind == "delta" and reply.delta.WhichOneof("type") == "new_element":
                self._note(reply.delta.new_element)
            elif kind == "script_finished" and reply.script_finished in DONE:
                # As the browser does: a full run (a page, or a fragment that asked for the whole app) replaces
                # the page's fragments; the server ignores a refresh of a fragment that is gone.
                if reply.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY:
                    self.fragments = registered
                else:
                    self.fragments |= registered
                return time.perf_counter() - start

    def _note(self, element) -> None:
        which = element.WhichOneof("type")
        part = getattr(element, which) if which else None
        if which == "exception":
            self.exceptions.append(f"{self.page or '/'}: {part.type}: {part.message}")
        elif which == "alert" and part.format == part.ERROR:
            self.errors.append(part.body)
        elif hasattr(part, "id") and hasattr(part, "label"):
            self.widgets[part.label] = part.id

    def close(self) -> None:
        self.ws.close()


def student(port: int, index: int, args, renders: list, polls: list, outcomes: list, problems: list) -> None:
    """One student: open the app, start a short run from the lab, then wander the pages watching it."""
    rng = random.Random(index)
    time.sleep(rng.uniform(0, args.ramp))  # a class does not press Enter in the same millisecond
    session = Session(port)
    session.page = "/"
    try:
        renders.append((time.time(), "/", session.open()))
        renders.append((time.time(), "lab", session.open("lab")))
        if index < args.runs:
            preset = (WidgetState(id=session.widgets["Preset"], string_value=args.preset),)
            if args.preset != "tutorial":  # each preset has its own knobs: show them first
                renders.append((time.time(), "lab", session.open("lab", preset)))
            knobs = preset + (
                WidgetState(id=session.widgets["Epochs"], int_value=1),
                WidgetState(id=session.widgets["Steps per epoch cap (0 = all)"], int_value=args.steps),
                WidgetState(id=session.widgets["Start training"], trigger_value=True),
            )
            renders.append((time.time(), "lab", session.open("lab", knobs)))
            outcomes.append(session.errors[0] if session.errors else "accepted")
        for _ in range(args.pages):
            page = rng.choice(list(session.pages))
            renders.append((time.time(), page or "/", session.open(page)))
            watch_until = time.perf_counter() + rng.uniform(*args.think)
            due = {f: time.perf_counter() + every for f, every in session.fragments.items()}
            while (now := time.perf_counter()) < watch_until:
                fragment, at = min(due.items(), key=lambda kv: kv[1], default=(None, watch_until))
                time.sleep(max(0.0, min(at, watch_until) - now))
                if fragment and fragment in session.fragments and time.perf_counter() < watch_until:
                    polls.append((time.time(), session.page, session.poll(fragment)))
                    due[fragment] = time.perf_counter() + session.fragments.get(fragment, 1e9)
                elif fragment:
                    due.pop(fragment, None)
    except Exception as e:  # a dropped connection or a timeout is a finding, not a crash of the bench
        problems.append(f"session {index} on {session.page or '/'}: {type(e).__name__}: {e}")
    finally:
        problems.extend(session.exceptions)
        session.close()


def server_status(pid: int) -> dict[str, int]:
    """Resident memory now and at its peak (the kernel's own high-water mark: no sampling can miss it), in MB,
    and the thread count, of the server process."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    mb = lambda name: int(fields[name].split()[0]) // 1024
    return {"rss_mb": mb("VmRSS"), "peak_mb": mb("VmHWM"), "threads": int(fields["Threads"])}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def ray_cluster(args):
    """With --executor ray: a Ray cluster of --ray-nodes nodes on this machine (Ray's own cluster_utils, as the tests
    use), yielding its address for the server's RAY_ADDRESS; otherwise nothing."""
    if args.executor != "ray":
        yield None
        return
    import ray
    from ray.cluster_utils import Cluster

    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": args.ray_cpus, "include_dashboard": False})
    for _ in range(args.ray_nodes - 1):
        nodes.add_node(num_cpus=args.ray_cpus)
    ray.init(address=nodes.address, log_to_driver=False)  # only to wait for the nodes to be up
    nodes.wait_for_nodes()
    ray.shutdown()
    try:
        yield nodes.address
    finally:
        nodes.shutdown()


def start_server(port: int, workdir: Path, args, options: list[str], ray_address: str | None = None) -> subprocess.Popen:
    """`streamlit run serve.py` on loopback only, with its own runs and data folders (and runs on Ray, when given)."""
    env = os.environ | {
        "CLASSROOM_RUNS_DIR": str(workdir / "runs"),
        "CLASSROOM_DATA_DIR": str(workdir / "data"),
        "CLASSROOM_MAX_QUEUE": str(args.max_queue),
        "CLASSROOM_MAX_RUNS_PER_DEVICE": str(args.slots),
    }
    env.pop("CLASSROOM_EXECUTOR", None)
    env.pop("RAY_ADDRESS", None)
    if ray_address:
        env |= {"CLASSROOM_EXECUTOR": "ray", "RAY_ADDRESS": ray_address}
    env.pop("CLASSROOM_TOKEN", None)
    command = [sys.executable, "-m", "streamlit", "run", "serve.py", "--server.port", str(port)]
    command += ["--server.address", "127.0.0.1", "--server.headless", "true"]
    for option in options:  # e.g. runner.postScriptGC=true, to measure a setting against .streamlit/config.toml
        name, _, value = option.partition("=")
        command += [f"--{name}", value]
    log = workdir / "server.log"  # a file, not a pipe: an unread pipe fills up and stalls the server's logging
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while time.time() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                return server
        except OSError:
            time.sleep(0.3)
    server.kill()
    raise SystemExit(f"the server did not start on port {port}: {log.read_text()[-2000:].strip()}")


def run_records(runs_dir: Path) -> list[dict]:
    """Every run the server kept on disk, with its final status once it has one."""
    records = []
    for folder in sorted(runs_dir.glob("*")):
        results = folder / "results.json"
        records.append(json.loads(results.read_text()) if results.exists() else {"status": "active"})
    return records


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] if ordered else float("nan")


def summary(name: str, times: list[float]) -> str:
    ms = [1000 * t for t in times]
    if not ms:
        return f"{name}: none"
    return (
        f"{name}: n={len(ms)}  median {statistics.median(ms):.0f} ms  p95 {percentile(ms, 95):.0f} ms  "
        f"max {max(ms):.0f} ms"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sessions", type=int, default=30, help="browser sessions at once")
    p.add_argument("--runs", type=int, default=30, help="how many of them start a run (tutorial preset on shapes)")
    p.add_argument("--preset", default="tutorial", help="the lab preset each run starts from")
    p.add_argument("--steps", type=int, default=150, help="training steps per run (one epoch, capped)")
    p.add_argument("--pages", type=int, default=12, help="pages each session opens after starting its run")
    p.add_argument("--think", type=float, nargs=2, default=(1.0, 4.0), help="seconds a student stays on a page")
    p.add_argument("--ramp", type=float, default=3.0, help="sessions arrive over this many seconds")
    p.add_argument("--slots", type=int, default=1, help="CLASSROOM_MAX_RUNS_PER_DEVICE for the server")
    p.add_argument("--max-queue", type=int, default=30, help="CLASSROOM_MAX_QUEUE for the server")
    p.add_argument("--executor", choices=("local", "ray"), default="local", help="where the runs train (CLASSROOM_EXECUTOR)")
    p.add_argument("--ray-nodes", type=int, default=2, help="with --executor ray: Ray nodes started on this machine")
    p.add_argument("--ray-cpus", type=int, default=1, help="with --executor ray: CPUs each of those nodes offers")
    p.add_argument("--streamlit", action="append", default=[], metavar="NAME=VALUE", help="a server option to override")
    p.add_argument("--timeout", type=float, default=600, help="give up waiting for the runs after this many seconds")
    p.add_argument("--versus", nargs="*", metavar="NAME=VALUE", default=None,
                   help="then measure again with these server options, and compare (no value: Streamlit's defaults)")
    p.add_argument("--json-out", default="", help="also write the figures to this JSON file")
    args = p.parse_args()
    figures = measure(args, args.streamlit)
    ok = not figures["failed"]
    if args.versus is not None:
        versus = args.versus or ["runner.postScriptGC=true", "server.fileWatcherType=auto"]
        other = measure(args, versus)
        ok = ok and not other["failed"]
        print(f"\nside by side: p95 page render {figures['page_render_p95_ms']} ms with "
              f"{' '.join(args.streamlit) or 'config.toml'} vs {other['page_render_p95_ms']} ms with {' '.join(versus)} "
              f"({other['page_render_p95_ms'] / figures['page_render_p95_ms']:.1f}x); medians "
              f"{figures['page_render_p50_ms']} vs {other['page_render_p50_ms']} ms")
        figures = {"this": figures, "versus": other}
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(figures, indent=1))
    return 0 if ok else 1


def measure(args, options: list[str]) -> dict:
    """One server, one class: start it, let the students loose, wait for every run; print and return the figures."""
    with tempfile.TemporaryDirectory(prefix="classroom-load-") as tmp, ray_cluster(args) as ray_address:
        workdir, port = Path(tmp), free_port()
        server = start_server(port, workdir, args, options, ray_address)
        try:
            warm = Session(port)  # first visits import torch and plotly: measured apart, as a server does once
            cold = [warm.open()]
            cold += [warm.open(page) for page in warm.pages if page]
            warm.close()
            baseline = server_status(server.pid)
            renders, polls, outcomes, problems = [], [], [], []
            students = [
                threading.Thread(target=student, args=(port, i, args, renders, polls, outcomes, problems))
                for i in range(args.sessions)
            ]
            began = time.time()
            for t in students:
                t.start()
            for t in students:
                t.join()
            sessions_done = time.time()
            while any(r["status"] == "active" for r in run_records(workdir / "runs")):
                if time.time() - began > args.timeout:
                    break
                time.sleep(0.5)
            ended = time.time()
            time.sleep(2)  # let finished runs' threads exit before counting them
            after = server_status(server.pid)
            records = run_records(workdir / "runs")
        finally:
            server.terminate()
            server.wait(timeout=30)

    training = [(r["started"], r["ended"]) for r in records if r.get("started")]
    window = (min(s for s, _ in training), max(e for _, e in training)) if training else (0, 0)
    during = [d for at, _, d in renders if window[0] <= at <= window[1]]
    statuses = {s: sum(r["status"] == s for r in records) for s in sorted({r["status"] for r in records})}
    refused = [o for o in outcomes if o != "accepted"]
    figures = {
        "sessions": args.sessions,
        "runs_submitted": len(outcomes),
        "runs_accepted": len(outcomes) - len(refused),
        "refusals": sorted(set(refused)),
        "run_statuses": statuses,
        "first_visit_ms": [round(1000 * c) for c in cold],
        "page_renders": len(renders),
        "page_render_p50_ms": round(1000 * statistics.median([d for *_, d in renders])),
        "page_render_p95_ms": round(1000 * percentile([d for *_, d in renders], 95)),
        "page_render_p95_while_training_ms": round(1000 * percentile(during, 95)) if during else None,
        "renders_while_training": len(during),
        "fragment_polls": len(polls),
        "fragment_poll_p95_ms": round(1000 * percentile([d for *_, d in polls], 95)) if polls else None,
        "training_window_s": round(window[1] - window[0], 1),
        "executor": f"ray, {args.ray_nodes} nodes x {args.ray_cpus} CPU" if ray_address else f"local, {args.slots} slots",
        "runs_finished_per_minute": round(60 * statuses.get("finished", 0) / max(ended - began, 1e-9), 1),
        "all_runs_ended_s": round(ended - began, 1),
        "sessions_s": round(sessions_done - began, 1),
        "rss_baseline_mb": baseline["rss_mb"],
        "rss_peak_mb": after["peak_mb"],
        "rss_after_mb": after["rss_mb"],
        "threads_baseline": baseline["threads"],
        "threads_after": after["threads"],
        "problems": problems,
    }
    slowest = {}
    for _, page, d in renders:
        slowest.setdefault(page, []).append(d)
    print(f"\nserver options: {' '.join(options) or '.streamlit/config.toml as it is'}")
    print(f"{args.sessions} sessions, {len(outcomes)} runs submitted ({statuses}), server on 127.0.0.1:{port}")
    print("first visits (cold imports):", ", ".join(f"{ms} ms" for ms in figures["first_visit_ms"]))
    print(summary("page renders", [d for *_, d in renders]))
    print(summary("page renders while runs trained", during))
    print(summary("fragment refreshes", [d for *_, d in polls]))
    for page, times in sorted(slowest.items(), key=lambda kv: -percentile(kv[1], 95)):
        print("  " + summary(page, times))
    print(f"runs ({figures['executor']}): all ended {figures['all_runs_ended_s']} s after the first session arrived "
          f"({figures['runs_finished_per_minute']} finished a minute); training window {figures['training_window_s']} s; "
          f"refusals: {figures['refusals'] or 'none'}")
    print(f"server memory: {figures['rss_baseline_mb']} MB warm, peak {figures['rss_peak_mb']} MB, "
          f"{figures['rss_after_mb']} MB after; threads {baseline['threads']} -> {after['threads']}")
    for problem in problems:
        print("PROBLEM:", problem)
    bad = problems or any(s != "finished" for s in statuses) or len(records) != figures["runs_accepted"]
    timeline = {"renders": [(round(at - began, 2), page, round(d, 3)) for at, page, d in renders],
                "polls": [(round(at - began, 2), page, round(d, 3)) for at, page, d in polls]}  # (start s, page, s)
    return figures | {"options": options, "failed": bool(bad)} | timeline


if __name__ == "__main__":
    sys.exit(main())
