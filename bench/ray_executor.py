"""The Ray executor's cost per run against the local one, on the same machine: images/s and click to first loss point.

    .venv/bin/python bench/ray_executor.py [--preset tutorial-fast] [--data shapes] [--repeats 5] [--set threads=2]

Both executors get the same seeded config through a RunManager, alternating local / ray so that the machine's load
drifts over both alike; Ray is a local instance started once, with as many CPUs as the run's threads. Per run:
- first loss point: from submit() to the first loss point a page can draw (the RunManager polled every 10 ms); and
  its start-up part, that time less the training time the first report says it took (the preset reports every 50
  steps: their time is the machine's, the rest the executor's). On Ray the start-up is Ray placing the actor, its new
  worker process importing torch (and torch's lazy imports on the first step), the data set from the node's NodeData
  (decoded there by the node's first run, which is reported apart, as the local runner's first run is) and a poll;
- images/s: images trained / train_seconds, the engine's own clock (pauses and test passes left out).
Then, on Ray alone, the controls (--controls runs of a long config, log_interval 2): the largest gap between two loss
points over 3 s of training; pause (until the last loss point arrives), resume (until the next one) and stop (until
the run's status is stopped, its final evaluation included).
Ray runs its workers at nice 15 (its `worker_niceness`), below everything else on the machine: on a machine shared with
other work that alone slows them; --worker-niceness 0 measures the executor without it.
Medians over the repeats, and the ratio ray / local of each.
"""

from __future__ import annotations

import statistics
import tempfile
import time

from common import dump, machine, parser

from classroom.config import preset
from classroom.executors import RayExecutor
from classroom.runs import LocalExecutor, RunManager


def one_run(manager: RunManager, config) -> dict:
    """Submit, time the first loss point, wait for the end; the run's own figures."""
    asked = time.perf_counter()
    run_id = manager.submit(config, owner="bench")
    phases = {}  # when it left the queue (Ray placed it), when its data set was in memory where it trains
    while not (snap := manager.get(run_id)).losses and snap.active:
        phases.setdefault(snap.status, round(time.perf_counter() - asked, 3))
        time.sleep(0.01)
    first = time.perf_counter() - asked
    startup = first - (snap.last_batch or {}).get("train_seconds", 0.0)
    snap = manager.wait(run_id, 1800)
    assert snap.status == "finished", (snap.status, snap.message)
    images = snap.last_batch["global_step"] * config.batch_size
    seconds = snap.epochs[-1]["train_seconds"]
    return {
        "first_loss_s": round(first, 3), "startup_s": round(startup, 3), "images_per_s": round(images / seconds, 1),
        "loading_at_s": phases.get("loading"), "running_at_s": phases.get("running"),
    }  # fmt: skip


def controls(manager: RunManager, config, trials: int) -> dict:
    """Seconds from each control to its effect as a page sees it, `trials` times; the loss points' largest gap."""
    config = config.replace(epochs=30, max_steps=0, log_interval=2, threads=1)  # minutes of training: it is stopped
    step = lambda run_id: manager.get(run_id).last_batch["global_step"]
    found = {"loss_gap_s": [], "pause_s": [], "resume_s": [], "stop_s": []}
    for i in range(trials):
        run_id = manager.submit(config.replace(seed=i), owner="bench")
        while not manager.get(run_id).losses:
            time.sleep(0.01)
        seen, arrivals, until = step(run_id), [], time.monotonic() + 3
        while time.monotonic() < until:
            if (now := step(run_id)) != seen:
                seen = now
                arrivals.append(time.monotonic())
            time.sleep(0.005)
        found["loss_gap_s"].append(max(b - a for a, b in zip(arrivals, arrivals[1:])))
        asked = moved = time.monotonic()
        manager.pause(run_id)
        while time.monotonic() - moved < 1.0:  # paused once no point has come for a second
            if (now := step(run_id)) != seen:
                seen, moved = now, time.monotonic()
            time.sleep(0.005)
        found["pause_s"].append(moved - asked)
        asked = time.monotonic()
        manager.resume(run_id)
        while step(run_id) == seen:
            time.sleep(0.005)
        found["resume_s"].append(time.monotonic() - asked)
        asked = time.monotonic()
        manager.stop(run_id)
        assert manager.wait(run_id, 60).status == "stopped"
        found["stop_s"].append(time.monotonic() - asked)
    return {k: [round(x, 3) for x in v] for k, v in found.items()}


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.set_defaults(data="shapes")
    p.add_argument("--preset", default="tutorial-fast")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--controls", type=int, default=3, help="runs on Ray whose pause, resume and stop are timed")
    p.add_argument("--worker-niceness", type=int, default=None, help="Ray's worker_niceness (default: Ray's own, 15)")
    args = p.parse_args()
    from common import with_changes

    config = with_changes(preset(args.preset, data=args.data, data_dir=args.data_dir, epochs=args.epochs, seed=0), args.set)
    cpus = config.threads or 2
    config = config.replace(threads=cpus)  # the same thread count on both sides; Ray's actor asks for as many CPUs
    import ray

    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        local = RunManager(f"{tmp}/local", executor=LocalExecutor())
        started = time.perf_counter()
        niceness = {} if args.worker_niceness is None else {"_system_config": {"worker_niceness": args.worker_niceness}}
        executor = RayExecutor(address="", num_cpus=cpus, **niceness)
        remote = RunManager(f"{tmp}/ray", executor=executor)
        while executor.cluster() is None:
            time.sleep(0.05)
        ray_start = time.perf_counter() - started
        local_first = one_run(local, config)  # loads the data set into this process once
        ray_first = one_run(remote, config)  # and into the node's NodeData
        rows = []
        for i in range(args.repeats):
            rows.append({"local": one_run(local, config.replace(seed=i)), "ray": one_run(remote, config.replace(seed=i))})
            print(rows[-1], flush=True)
        control = controls(remote, config, args.controls)
        remote.shutdown()
        local.shutdown()

    med = lambda side, key: statistics.median(r[side][key] for r in rows)
    results = {
        "bench": "ray_executor",
        "machine": machine() | {"ray": ray.__version__},
        "config": config.to_dict(),
        "ray_instance_start_s": round(ray_start, 1),
        "ray_worker_niceness": 15 if args.worker_niceness is None else args.worker_niceness,
        "local_first_run": local_first,
        "ray_first_run": ray_first,
        "runs": rows,
        "ray_controls": control,
        "median": {side: {k: med(side, k) for k in ("first_loss_s", "startup_s", "images_per_s")} for side in ("local", "ray")},
    }
    m = results["median"]
    results["ray_vs_local"] = {
        "images_per_s_ratio": round(m["ray"]["images_per_s"] / m["local"]["images_per_s"], 3),
        "first_loss_extra_s": round(m["ray"]["first_loss_s"] - m["local"]["first_loss_s"], 2),
        "startup_extra_s": round(m["ray"]["startup_s"] - m["local"]["startup_s"], 2),
    }
    dump(args, results)


if __name__ == "__main__":
    main()
