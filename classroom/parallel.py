"""Lesson 8's data-parallel training: the script torchrun runs (plain torch), and launching it with a time limit."""

from __future__ import annotations

import atexit
import functools
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

SCRIPT = '''"""ddp_train.py: one training script for one process or many.

python ddp_train.py                         one process trains on batches of 32
torchrun --nproc_per_node=2 ddp_train.py    two processes, 16 samples each per step, one model
"""

import time

STARTED = time.time()  # before importing torch: starting processes is part of the cost

import argparse
import json
import os
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset


def make_data(n=1024, features=16, classes=4, seed=0):
    """Random points, labelled by which of 4 fixed random directions each points along most."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g)
    y = (x @ torch.randn(features, classes, generator=g)).argmax(dim=1)
    return TensorDataset(x, y, torch.arange(n))  # with each sample's index, to show who saw what


def main():
    parser = argparse.ArgumentParser(description="Train a small classifier in one process or many.")
    parser.add_argument("--global-batch", type=int, default=32, help="samples per step, in all")
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.2)
    parser.add_argument("--out", type=Path, default=Path("ddp_out"), help="folder for the results")
    args = parser.parse_args()

    # torchrun sets RANK and WORLD_SIZE in every process it starts; plain `python` is rank 0 of 1.
    rank = int(os.environ.get("RANK", 0))
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    if world_size > 1:
        # gloo: the CPU backend (nccl is the GPU one). MASTER_ADDR and MASTER_PORT, set by
        # torchrun too, say where the processes meet. The timeout turns a peer that died into an
        # error rather than a hang.
        dist.init_process_group("gloo", timeout=timedelta(seconds=30))

    data = make_data()
    # One shuffled order of the whole set, the same in every process (same seed); rank r takes
    # every world_size-th sample from position r: one step's shards make one global batch.
    sampler = DistributedSampler(data, num_replicas=world_size, rank=rank, shuffle=True, seed=0)
    batch = args.global_batch // world_size  # per process
    loader = DataLoader(data, batch_size=batch, sampler=sampler, drop_last=True)

    torch.manual_seed(0)  # the same initial weights everywhere (DDP copies rank 0's to all anyway)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    if world_size > 1:
        model = DistributedDataParallel(model)  # backward() now averages gradients across processes
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()
    ready = time.time()  # all before this is starting up: import torch, meet the others, build

    losses, first_batch, epoch = [], [], 0
    while len(losses) < args.steps:
        sampler.set_epoch(epoch)  # a fresh order each epoch, still the same in every process
        for x, y, index in loader:
            if not losses:
                first_batch = index.tolist()
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)  # the mean over this process's shard only
            loss.backward()  # DDP all-reduces here: every process gets the global batch's gradient
            optimizer.step()  # same weights, same gradient: the same step in every process
            logged = loss.detach()
            if world_size > 1:  # for the log only: the shards' mean loss is the global batch's
                dist.all_reduce(logged, op=dist.ReduceOp.SUM)
                logged = logged / world_size
            losses.append(logged.item())
            if len(losses) == args.steps:
                break
        epoch += 1
    trained = time.time()

    args.out.mkdir(parents=True, exist_ok=True)
    weights = model.module if world_size > 1 else model  # DDP wraps the model: save the wrapped one
    torch.save(weights.state_dict(), args.out / f"rank{rank}.pt")
    result = {
        "rank": rank,
        "world_size": world_size,
        "batch": batch,
        "losses": losses,
        "first_batch": first_batch,
        "started_at": STARTED,
        "startup_seconds": ready - STARTED,
        "train_seconds": trained - ready,
    }
    (args.out / f"rank{rank}.json").write_text(json.dumps(result))
    print(f"rank {rank} of {world_size}: {len(losses)} steps of {batch}, last loss {losses[-1]:.4f}")
    if world_size > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
'''


@functools.lru_cache(maxsize=1)
def workdir() -> Path:
    """A temporary folder for the lesson's script and results: one per process, removed when the process ends."""
    folder = Path(tempfile.mkdtemp(prefix="ddp-lesson-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def launch(command: list, out: Path, timeout: float = 90.0) -> dict:
    """Run the command with `--out out` added and wait: its wall time and each process's results (out/rank*.json).

    If a process dies, torchrun stops the others and exits non-zero: RuntimeError with the end of the output. A launch
    still going after timeout seconds is stopped, with every process it started: RuntimeError too."""
    out = Path(out)
    shutil.rmtree(out, ignore_errors=True)  # an earlier launch's results must not pass for this one's
    command = [str(part) for part in command] + ["--out", str(out)]
    shown = " ".join(Path(command[0]).name if i == 0 else part for i, part in enumerate(command))
    # One CPU thread per process (torchrun's default too): two processes on two cores, no thread fighting another.
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    launched, start = time.time(), time.perf_counter()  # time.time(): comparable with the processes' own clocks
    # Its own session, so a timeout can kill the launcher's whole process group and never this process.
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.terminate()  # torchrun passes a SIGTERM on to the workers it started (each in a session of its own)
        try:
            output, _ = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
        raise RuntimeError(
            f"`{shown}` did not finish within {timeout:g} s (a process that hangs or waits for a peer that died), "
            f"so it was stopped. The end of its output:\n{_tail(output)}"
        ) from None
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        raise RuntimeError(f"`{shown}` failed with exit status {process.returncode}. The end of its output:\n{_tail(output)}")
    ranks = sorted((json.loads(p.read_text()) for p in out.glob("rank*.json")), key=lambda r: r["rank"])
    result = {"command": shown, "launched_at": launched, "seconds": seconds, "ranks": ranks, "output": output}
    (out / "launch.json").write_text(json.dumps(result))  # kept beside the weights: the page's chart reads it
    return result


def _tail(output: str, lines: int = 40) -> str:
    """The end of a launch's output, without torchrun's own traceback: the workers' errors and its summary stay."""
    output = re.sub(r"Traceback \(most recent call last\):\n(?:\s.*\n)+?\S*ChildFailedError:.*\n", "", output)
    return "\n".join(output.strip().splitlines()[-lines:]) or "(nothing)"
