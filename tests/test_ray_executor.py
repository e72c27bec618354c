"""Runs on Ray, on this one machine: a local Ray instance end to end, then a two-node cluster (Ray's own
cluster_utils): two runs at once, one per node, the queue, controls, a node leaving mid-run, data a node lacks,
an unreachable cluster, and the server's shutdown ending its runs. Ray starts slowly on two cores, so the cluster is
shared by the module's tests."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import ray

from classroom import checkpoints
from classroom.config import ConfigError, TrainConfig
from classroom.executors import Cluster, RayExecutor
from classroom.runs import LocalExecutor, RunManager, RunRefused

# Seeded, one thread (one CPU for Ray): the same run trains the same way wherever it runs.
SHORT = TrainConfig(
    model="net", data="shapes", batch_size=64, lr=0.05, epochs=1, max_steps=6, log_interval=1, device="cpu", threads=1, seed=3
)
LONG = SHORT.replace(epochs=30, max_steps=0, log_interval=2)  # minutes of training: it is paused or ends early


def wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def training(manager, run_id):
    return lambda: (s := manager.get(run_id)).status == "running" and len(s.losses) >= 2


def test_the_engine_imports_ray_only_for_the_ray_executor(tmp_path, monkeypatch):
    """`make run` and the tests that train locally start as fast as before: no Ray import, the local executor."""
    script = "import sys; import classroom.runs as r; m = r.RunManager(sys.argv[1]); print(m.executor.name, 'ray' in sys.modules)"
    root = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if k != "CLASSROOM_EXECUTOR"}
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=root, env=env, capture_output=True, text=True)
    assert out.stdout.split() == ["local", "False"], out.stderr
    monkeypatch.setenv("CLASSROOM_EXECUTOR", "rya")
    with pytest.raises(ValueError, match="CLASSROOM_EXECUTOR='rya': use local or ray"):
        RunManager(tmp_path)


def test_a_local_ray_instance_runs_a_run_end_to_end_through_the_run_manager(tmp_path):
    """No RAY_ADDRESS: the app starts a Ray instance of its own; the record is the one a local run leaves."""
    assert not ray.is_initialized()
    executor = RayExecutor(address="", num_cpus=2)
    manager = RunManager(tmp_path / "ray", executor=executor)
    try:
        run_id = manager.submit(SHORT, owner="student")
        assert manager.get(run_id).status == "queued"  # until Ray has placed its actor
        done = manager.wait(run_id, 90)
    finally:
        manager.shutdown()
    assert not ray.is_initialized()  # the instance the app started went with it
    assert done.status == "finished" and done.executor == "ray" and done.node and done.node_id
    assert done.device == f"cpu on {done.node}" and len(done.epochs) == 1 and done.test_accuracy is not None

    folder = tmp_path / "ray" / run_id
    assert json.loads((folder / "config.json").read_text())["executor"] == "ray"
    results = json.loads((folder / "results.json").read_text())
    assert results["status"] == "finished"
    assert (results["executor"], results["node"], results["device"]) == ("ray", done.node, "cpu")
    lines = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [line["global_step"] for line in lines if line["kind"] == "batch"] == list(range(1, 7))
    _, info = checkpoints.load(folder / "checkpoint.pt")
    assert info["metrics"]["test_accuracy"] == results["test_accuracy"] == done.test_accuracy

    # The same seeded run in this process trains the same way: where a run trains changes nothing in it.
    local = RunManager(tmp_path / "local", executor=LocalExecutor())
    here = local.wait(local.submit(SHORT, owner="student"), 90)
    local.shutdown()
    assert here.losses == done.losses and here.test_accuracy == done.test_accuracy

    back = RunManager(tmp_path / "ray", executor=LocalExecutor()).get(run_id)  # a restarted server, local or not
    assert (back.status, back.executor, back.node, back.losses) == ("finished", "ray", done.node, done.losses)
    evaluation, _ = RunManager(tmp_path / "ray", executor=LocalExecutor()).evaluation(run_id)  # from the checkpoint
    assert evaluation.accuracy == done.test_accuracy


@pytest.fixture(scope="module")
def cluster():
    """Two Ray nodes of one CPU each on this machine, and this process connected to them as the server is."""
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    second = nodes.add_node(num_cpus=1)
    ray.init(address=nodes.address, log_to_driver=False)
    nodes.wait_for_nodes()
    yield nodes, second
    ray.shutdown()
    nodes.shutdown()


def test_two_runs_train_at_once_one_per_node_and_a_node_leaving_fails_its_run(cluster, tmp_path):
    nodes, second = cluster
    executor = RayExecutor()  # this process is connected already: the executor uses that connection
    manager = RunManager(tmp_path, max_queue=1, executor=executor)
    try:
        a, b = (manager.submit(LONG.replace(seed=i), owner=f"student-{i}") for i in (1, 2))
        wait_for(training(manager, a), 90)
        wait_for(training(manager, b), 90)
        manager.pause(a)
        manager.pause(b)
        snaps = {run_id: manager.get(run_id) for run_id in (a, b)}
        assert {s.node_id for s in snaps.values()} == {n["NodeID"] for n in ray.nodes() if n["Alive"]}  # one per node

        # Both CPUs are taken: the next run waits for Ray, in line; past CLASSROOM_MAX_QUEUE the class is busy.
        c = manager.submit(SHORT, owner="student-3")
        assert (manager.get(c).status, manager.get(c).queue_position) == ("queued", 1)
        with pytest.raises(RunRefused, match="busy"):
            manager.submit(SHORT, owner="student-4")
        manager.stop(c)
        assert manager.get(c).status == "stopped" and "before it started" in manager.get(c).message

        # Paused within a poll: no loss point arrives any more.
        time.sleep(1.0)
        held = {run_id: len(manager.get(run_id).losses) for run_id in (a, b)}
        time.sleep(1.5)
        assert {run_id: len(manager.get(run_id).losses) for run_id in (a, b)} == held

        # The second node leaves the cluster mid-run: its run fails saying so, with its metrics up to its last report.
        gone = next(run_id for run_id, s in snaps.items() if s.node_id == second.node_id)
        stays = b if gone == a else a
        nodes.remove_node(second)
        failed = manager.wait(gone, 60)
        assert failed.status == "failed" and "the machine training this run left the cluster" in failed.message
        assert len(failed.losses) == held[gone] > 0
        lines = (tmp_path / gone / "metrics.jsonl").read_text().splitlines()
        assert lines and json.loads((tmp_path / gone / "results.json").read_text())["status"] == "failed"

        # The other run goes on, then stops on request.
        manager.resume(stays)
        wait_for(lambda: len(manager.get(stays).losses) > held[stays], 30)
        asked = time.monotonic()
        manager.stop(stays)
        stopped = manager.wait(stays, 30)
        assert stopped.status == "stopped" and "stopped by request" in stopped.message
        assert time.monotonic() - asked < 10  # on two busy cores; the figure on a quiet machine is in BENCHMARKS.md
        assert (tmp_path / stays / "checkpoint.pt").is_file()
    finally:
        manager.shutdown()


def test_a_folder_missing_on_the_training_machine_is_named_with_that_machine(cluster, tmp_path):
    (tmp_path / "data").mkdir()
    manager = RunManager(tmp_path / "runs", data_roots=[tmp_path / "data"], executor=RayExecutor())
    try:
        run_id = manager.submit(SHORT.replace(data=f"folder:{tmp_path / 'data' / 'not-here'}"), owner="s")
        failed = manager.wait(run_id, 60)
    finally:
        manager.shutdown()
    assert failed.status == "failed" and failed.message.startswith(f"on {failed.node}, the machine training this run: ")


def test_stopping_the_server_ends_its_ray_runs(cluster, tmp_path):
    manager = RunManager(tmp_path, executor=RayExecutor())
    cpus = ray.cluster_resources()["CPU"]
    run_id = manager.submit(LONG, owner="s")
    wait_for(training(manager, run_id), 60)
    wait_for(lambda: ray.available_resources().get("CPU", 0) == cpus - 1, 30)
    manager.shutdown()
    assert manager.get(run_id).status == "stopped"
    wait_for(lambda: ray.available_resources().get("CPU", 0) == cpus, 30)  # the actor is gone, its CPU back to Ray


def test_a_run_no_machine_could_hold_is_refused_rather_than_left_waiting(cluster, tmp_path):
    executor = RayExecutor()
    manager = RunManager(tmp_path, executor=executor)
    wait_for(lambda: executor.cluster() is not None, 30)
    with pytest.raises(RunRefused, match="no machine of the Ray cluster has 8 CPUs"):
        manager.submit(SHORT.replace(threads=8), owner="s")
    with pytest.raises(ConfigError, match="no machine of the Ray cluster has a GPU"):
        manager.submit(SHORT.replace(device="cuda"), owner="s")
    assert manager.list() == []
    manager.shutdown()


def test_a_run_whose_worker_process_dies_fails_saying_so(cluster, tmp_path):
    executor = RayExecutor()
    manager = RunManager(tmp_path, executor=executor)
    try:
        run_id = manager.submit(LONG, owner="s")
        wait_for(training(manager, run_id), 60)
        pid = ray.get(executor._actors[run_id].where.remote())["pid"]
        os.kill(pid, signal.SIGKILL)  # as the kernel's out-of-memory killer would
        failed = manager.wait(run_id, 60)
    finally:
        manager.shutdown()
    assert failed.status == "failed" and f"the Ray worker training this run on {failed.node} died" in failed.message
    assert failed.losses


def test_a_killed_server_takes_its_ray_runs_with_it(cluster, tmp_path):
    """SIGKILL, no shutdown: Ray ends the actors a dead driver owned (they are not detached)."""
    nodes, _ = cluster
    script = textwrap.dedent(f"""
        import time
        from classroom.config import TrainConfig
        from classroom.runs import RunManager
        m = RunManager({str(tmp_path)!r})  # CLASSROOM_EXECUTOR and RAY_ADDRESS from the environment, as the server
        run_id = m.submit(TrainConfig(**{LONG.to_dict()!r}))
        while not m.get(run_id).losses:
            time.sleep(0.05)
        print(m.get(run_id).executor, flush=True)
        time.sleep(600)
    """)
    env = os.environ | {"CLASSROOM_EXECUTOR": "ray", "RAY_ADDRESS": nodes.address}
    root = Path(__file__).resolve().parent.parent
    server = subprocess.Popen([sys.executable, "-c", script], cwd=root, env=env, stdout=subprocess.PIPE, text=True)
    cpus = ray.cluster_resources()["CPU"]
    try:
        assert server.stdout.readline().strip() == "ray"  # training on the cluster
        wait_for(lambda: ray.available_resources().get("CPU", 0) == cpus - 1, 30)
        server.kill()
        server.wait(30)
        wait_for(lambda: ray.available_resources().get("CPU", 0) == cpus, 60)  # its actor ended with it
    finally:
        server.kill()


def test_an_unreachable_cluster_refuses_ray_runs_and_the_app_keeps_serving(tmp_path):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    executor = RayExecutor(address=f"127.0.0.1:{port}")
    manager = RunManager(tmp_path, executor=executor)
    wait_for(lambda: executor.unavailable(), 10)
    with pytest.raises(RunRefused, match=f"127.0.0.1:{port} cannot be reached"):
        manager.submit(SHORT, owner="s")
    assert manager.list() == [] and executor.cluster().error  # the sidebar says why; nothing else is in the way
    manager.shutdown()


def test_the_cluster_line_never_waits_for_the_cluster(cluster, monkeypatch):
    """A head that stops answering: the sidebar still gets the last look at once, and a new one is asked for aside."""
    executor = RayExecutor()
    wait_for(lambda: executor.cluster() is not None and executor.cluster().nodes >= 1, 30)
    slow = lambda: time.sleep(3) or []
    monkeypatch.setattr(ray, "nodes", slow)
    executor._view = dataclasses.replace(executor._view, asked=0.0)  # stale: the next look starts a refresh
    asked = time.monotonic()
    view = executor.cluster()
    assert time.monotonic() - asked < 0.5 and view.nodes >= 1
    executor.close()


class StandIn:
    """An executor as the sidebar sees it: remote, with a cluster view (no Ray needed)."""

    name, remote, node = "ray", True, ""

    def __init__(self, view):
        self.view = view

    def cluster(self):
        return self.view

    def close(self):
        pass


@pytest.mark.parametrize(
    "view, line",
    [
        (Cluster(3, 40, 4, ((8, 0), (16, 2), (16, 2))), "**3 machines**, 40 CPUs, 4 GPUs · 0 runs going, 0 waiting"),
        (None, "Cluster: connecting to Ray…"),
        (Cluster(error="the Ray cluster at head:6379 cannot be reached"), "Cluster: unavailable, runs are refused"),
    ],
)
def test_the_sidebar_shows_the_cluster(tmp_path, monkeypatch, view, line):
    from streamlit.testing.v1 import AppTest

    from ui import state

    monkeypatch.setenv("CLASSROOM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("CLASSROOM_TOKEN", raising=False)
    manager = RunManager(tmp_path / "runs", executor=StandIn(view))
    monkeypatch.setattr(state, "manager", lambda: manager)
    at = AppTest.from_file("../app.py", default_timeout=60).run()
    assert not at.exception
    assert any(line in c.value for c in at.sidebar.caption), [c.value for c in at.sidebar.caption]
