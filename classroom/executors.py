"""Where runs train, beside classroom.runs.LocalExecutor (this process's threads): RayExecutor, a Ray cluster.

The RunManager keeps every run's state and record; an executor only loads, trains and hands back an Outcome. On Ray each
run is an actor asking for what it needs (a GPU, or the CPUs of its threads), so Ray's scheduler is the queue across
machines. Ray is imported when a RayExecutor is made, never by importing this module.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from classroom.evaluation import Evaluation
from classroom.remote import NodeData, RemoteRun


@dataclass
class Outcome:
    """How a run ended, as the RunManager records it: the trained model only as checkpoint bytes."""

    status: str  # finished | stopped | failed
    message: str
    evaluation: Evaluation | None = None
    checkpoint: bytes | None = None
    device: str = ""  # where it trained, as torch names it on that machine (cpu, cuda:0)


@dataclass(frozen=True)
class Cluster:
    """The Ray cluster as last asked (every few seconds at most): alive machines and their resources."""

    nodes: int = 0
    cpus: float = 0.0
    gpus: float = 0.0
    machines: tuple[tuple[float, float], ...] = ()  # (CPUs, GPUs) of each alive machine
    error: str = ""  # why the cluster cannot be used; the other fields are then empty
    asked: float = field(default=0.0, compare=False)  # time.monotonic() of the answer


class RayExecutor:
    """Runs as Ray actors on the cluster at `address` (RAY_ADDRESS), or on a local Ray instance started here."""

    name, remote = "ray", True
    POLL_SECONDS = 0.25  # the server asks each run for its events this often: loss points arrive several times a second
    ANSWER_SECONDS = 30.0  # a run whose machine does not answer a poll for this long has failed
    CONNECT_SECONDS = 60.0  # a cluster that has not answered ray.init by then is reported unreachable
    VIEW_SECONDS = 3.0  # the sidebar's cluster line is at most this old

    def __init__(self, address: str | None = None, cpus_per_run: int | None = None, **init_options):
        self.address = os.environ.get("RAY_ADDRESS", "") if address is None else address
        self.cpus_per_run = cpus_per_run or _env_int("CLASSROOM_RAY_CPUS_PER_RUN", 1)  # for configs with threads = 0
        self.node = ""
        self._init_options = init_options  # for a local instance: num_cpus, num_gpus, ...
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._closed = threading.Event()
        self._connecting_since = time.monotonic()
        self._error = ""  # why the last connection attempt failed
        self._started = False  # this executor called ray.init (and so calls ray.shutdown)
        self._actor = None  # ray.remote(RemoteRun), once connected
        self._actors: dict[str, object] = {}  # run id -> its actor, while it runs
        self._node_data: dict[str, object] = {}  # node id -> that node's NodeData actor, made by its first run
        self._view: Cluster | None = None
        self._refreshing = False
        self._start_connecting()

    # --- the connection ------------------------------------------------------------------------------------------

    def _start_connecting(self) -> None:
        self._connecting_since, self._error = time.monotonic(), ""
        self._thread = threading.Thread(target=self._connect, name="ray-connect", daemon=True)  # ray.init: up to minutes
        self._thread.start()

    def _connect(self) -> None:
        """ray.init in this thread, which then waits for close() and calls ray.shutdown: Ray's local processes die with
        the thread that started them (Linux sends their parent-death signal when that thread ends), and a shutdown
        from another thread took 15 s instead of 1 s here."""
        where = self.address or "a local Ray instance"
        try:
            _reachable(self.address)  # a closed port answers in milliseconds; ray.init would retry it for minutes
            ray = _import_ray()

            if not ray.is_initialized():  # a host program (the tests) may have connected this process already
                options = {"namespace": "classroom", "log_to_driver": False} | self._init_options
                if not self.address:
                    options.setdefault("include_dashboard", False)  # a local instance serves this app only
                ray.init(address=self.address or "local", **options)
                self._started = True
            self._actor, self._data_actor = ray.remote(RemoteRun), ray.remote(NodeData)
            self._refresh()
            self._connected.set()
            atexit.register(self.close)  # before Ray's own exit hook: the server's end ends its runs on the cluster
        except Exception as e:  # any failure to connect leaves the app serving, with Ray runs refused
            self._error = f"the Ray cluster at {where} cannot be reached ({_short(e)})"
            return
        self._closed.wait()
        if self._started:
            ray.shutdown()
        self._connected.clear()

    def unavailable(self) -> str:
        """Why Ray runs are refused now, or "" (connected, or still connecting within CONNECT_SECONDS).

        A failed connection is tried again, in the background, when asked 15 s or more after the last try."""
        if self._connected.is_set():
            return ""
        with self._lock:
            error, waited = self._error, time.monotonic() - self._connecting_since
            if error and waited > 15:
                self._start_connecting()
        if not error and waited > self.CONNECT_SECONDS:
            return f"the Ray cluster at {self.address or 'this machine'} did not answer within {self.CONNECT_SECONDS:.0f} s"
        return error

    def _ray(self):
        """The ray module once connected; RuntimeError with the reason when the cluster cannot be used."""
        deadline = self._connecting_since + self.CONNECT_SECONDS
        while not self._connected.wait(0.2):
            if self._error or time.monotonic() > deadline:
                raise RuntimeError(self.unavailable() or "the Ray cluster cannot be reached")
        import ray

        return ray

    # --- what a run asks for ---------------------------------------------------------------------------------------

    def device_for(self, config) -> str:
        """cpu or cuda (any GPU Ray gives the run); `auto` is cuda when some machine of the cluster has a GPU."""
        kind = config.device.split(":")[0]
        if kind == "mps":
            raise ValueError("device: mps is one Mac's GPU; runs on the Ray cluster use cpu, cuda or auto")
        view = self.cluster()
        gpus = view.gpus if view is not None and not view.error else None  # None: not known yet
        if kind == "cuda" and gpus == 0:
            raise ValueError("device: cuda was asked for but no machine of the Ray cluster has a GPU; use cpu or auto")
        if kind == "auto":
            return "cuda" if gpus else "cpu"
        return kind

    def resources(self, config, device: str) -> dict:
        """The actor's ask: a GPU for a CUDA run; CPUs as the config's threads (CLASSROOM_RAY_CPUS_PER_RUN when 0)."""
        return {"num_cpus": config.threads or self.cpus_per_run, "num_gpus": 1 if device == "cuda" else 0}

    def refusal(self, config, device: str) -> str | None:
        """Why this run cannot go to the cluster: the cluster is unreachable, or no machine could ever hold it."""
        if why := self.unavailable():
            return f"training on the cluster is unavailable: {why}"
        view = self.cluster()
        if view is None:
            return None  # connecting: the run waits for the connection, then for Ray
        if view.error:  # the head stopped answering a few seconds ago at most
            return f"training on the cluster is unavailable: {view.error}"
        ask = self.resources(config, device)
        if any(cpus >= ask["num_cpus"] and gpus >= ask["num_gpus"] for cpus, gpus in view.machines):
            return None
        if not any(cpus for cpus, _ in view.machines):
            return "the Ray cluster has no machine to train on yet: start a worker (README, A class bigger than one machine)"
        what = f"{ask['num_cpus']} CPUs" + (" and a GPU" if ask["num_gpus"] else "")
        return f"no machine of the Ray cluster has {what} for one run: lower the threads, or add such a machine"

    def capacity(self) -> tuple[float, float] | None:
        """The CPUs and GPUs of the cluster's alive machines, as last asked; None when not known."""
        view = self.cluster()
        return None if view is None or view.error else (view.cpus, view.gpus)

    # --- a run ---------------------------------------------------------------------------------------------------

    def execute(self, job) -> Outcome | None:
        """Start the run's actor, wait for Ray to place it, relay controls and events until it ends.

        None: the run was stopped before Ray placed it (the RunManager has recorded that already)."""
        try:
            ray = self._ray()
        except RuntimeError as e:
            return Outcome("failed", f"training on the cluster is unavailable: {e}")
        actor = self._actor.options(**self.resources(job.config, job.device), max_concurrency=4, max_restarts=0).remote()
        with self._lock:
            self._actors[job.run_id] = actor
        where = None
        try:
            placed = actor.where.remote()
            while not ray.wait([placed], timeout=0.5)[0]:  # pending: Ray has no machine free for it yet
                if job.cancelled():
                    return None
            where = ray.get(placed)
            if not job.placed(where["node"], where["node_id"]):
                return None
            data_dir = str(Path(job.config.data_dir).resolve())  # the same absolute path on every machine
            done = actor.train.remote(job.config, job.device, data_dir, job.roots, self._data_on(ray, where["node_id"]))
            since, answered = 0, time.monotonic()
            while True:
                finished = bool(ray.wait([done], timeout=self.POLL_SECONDS)[0])
                control = (job.control.paused, job.control.stopped.is_set())
                try:
                    items = ray.get(actor.poll.remote(since, *control), timeout=self.ANSWER_SECONDS)
                except ray.exceptions.ActorUnavailableError:  # a network blip: Ray reconnects, or declares it dead
                    if time.monotonic() - answered > self.ANSWER_SECONDS:
                        raise
                    time.sleep(self.POLL_SECONDS)
                    continue
                answered = time.monotonic()
                for number, kind, what in items:
                    since = number + 1
                    if kind == "loaded":
                        job.loaded(what["classes"], what["label"], what["images"])
                    else:
                        job.event(what)
                if finished:
                    break
            answer = ray.get(done)
            return Outcome(answer["status"], answer["message"], answer["evaluation"], answer["checkpoint"], answer["device"])
        except ray.exceptions.RayError as e:
            return Outcome("failed", self._why(ray, e, where))
        finally:
            with self._lock:
                self._actors.pop(job.run_id, None)
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)  # its CPUs or GPU go back to Ray now; a pending one leaves Ray's queue

    def _data_on(self, ray, node_id: str):
        """The node's NodeData actor: pinned to it, asking for no CPU, owned by this server (it ends with the server)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        with self._lock:
            if node_id not in self._node_data:
                pinned = NodeAffinitySchedulingStrategy(node_id, soft=False)
                self._node_data[node_id] = self._data_actor.options(
                    num_cpus=0, max_concurrency=8, scheduling_strategy=pinned, max_restarts=0
                ).remote()
            return self._node_data[node_id]

    def _why(self, ray, error: Exception, where: dict | None) -> str:
        """The run's message for a Ray failure: its machine left, its process died, or it never started."""
        if where is None:
            return f"Ray could not start this run on a worker: {_short(error)}"
        left = "its node has died" in str(error)
        with contextlib.suppress(Exception):
            left = left or not any(n["NodeID"] == where["node_id"] and n["Alive"] for n in ray.nodes())
        if left:
            with self._lock:
                self._node_data.pop(where["node_id"], None)
            return f"the machine training this run left the cluster ({where['node']})"
        if isinstance(error, ray.exceptions.GetTimeoutError | ray.exceptions.ActorUnavailableError):
            return f"the machine training this run ({where['node']}) stopped answering for {self.ANSWER_SECONDS:.0f} s"
        return f"the Ray worker training this run on {where['node']} died: {_short(error)}"

    def close(self) -> None:
        """Stop every run's actor here (Ray would also end them with this process) and a local instance started here."""
        if not self._connected.is_set():
            return
        import ray

        with self._lock:
            actors, self._actors = [*self._actors.values(), *self._node_data.values()], {}
            self._node_data = {}
        for actor in actors:
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)
        self._closed.set()
        self._thread.join(30)

    # --- the cluster, for the sidebar ------------------------------------------------------------------------------

    def cluster(self) -> Cluster | None:
        """The cluster as last asked, never waiting for it; a refresh starts in the background once it is stale.

        None while the first connection is still being made."""
        if why := self.unavailable():
            return Cluster(error=why)
        with self._lock:
            view = self._view
            stale = view is None or time.monotonic() - view.asked > self.VIEW_SECONDS
            if self._connected.is_set() and not self._closed.is_set() and stale and not self._refreshing:
                self._refreshing = True
                threading.Thread(target=self._refresh, name="ray-cluster-view", daemon=True).start()
        return view

    def _refresh(self) -> None:
        import ray

        try:
            if not ray.is_initialized():  # shut down meanwhile: ray.nodes() would connect again on its own
                raise ConnectionError("this server is no longer connected")
            alive = [n for n in ray.nodes() if n.get("Alive")]
            machines = tuple((n["Resources"].get("CPU", 0.0), n["Resources"].get("GPU", 0.0)) for n in alive)
            cpus, gpus = sum(c for c, _ in machines), sum(g for _, g in machines)
            view = Cluster(len(alive), cpus, gpus, machines, asked=time.monotonic())
        except Exception as e:  # the head went away: said in the sidebar, runs refused until it answers again
            view = Cluster(error=f"the Ray cluster does not answer ({_short(e)})", asked=time.monotonic())
        with self._lock:
            self._view, self._refreshing = view, False


def _import_ray():
    """ray, imported without its C++ crash handler in this process: the handler also catches SIGTERM, and every stop
    of the server printed a stack dump that reads like a crash. Ray reads the switch once, at import; it is put back
    before ray.init, so the processes Ray starts keep their crash reports."""
    import sys

    if "ray" in sys.modules:
        import ray

        return ray
    before = os.environ.get("RAY_DISABLE_FAILURE_SIGNAL_HANDLER")
    os.environ["RAY_DISABLE_FAILURE_SIGNAL_HANDLER"] = "1"
    try:
        import ray
    finally:
        if before is None:
            del os.environ["RAY_DISABLE_FAILURE_SIGNAL_HANDLER"]
        else:
            os.environ["RAY_DISABLE_FAILURE_SIGNAL_HANDLER"] = before
    return ray


def _reachable(address: str, timeout: float = 5.0) -> None:
    """ConnectionError unless something listens at host:port (ray://host:port too); other forms are Ray's to read."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "" (a local instance), "auto", "local": nothing to dial
    with socket.create_connection((host, int(port)), timeout=timeout):
        pass


def _short(error: Exception, limit: int = 300) -> str:
    """An error in one line: Ray's own errors carry tracebacks and IDs; the last line says what happened."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[-1] if lines else type(error).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _env_int(name: str, default: int) -> int:
    try:
        return max(1, int(os.environ.get(name, default)))
    except ValueError:
        return default
