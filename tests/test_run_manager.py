"""Shared devices: the queue and its positions, the queue cap, one run per session, many runs at once, restarts."""

import json
import threading
import time

import pytest

from classroom import data
from classroom.config import TrainConfig
from classroom.runs import RunManager, RunRefused

TINY = TrainConfig(model="net", data="shapes", batch_size=64, lr=0.05, epochs=1, max_steps=2, log_interval=1, device="cpu")


def wait_for(predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def small_shapes():
    return data.make_shapes(n_train=640, n_test=256)


@pytest.fixture(autouse=True)
def quick_data(monkeypatch, small_shapes):
    """Every run here trains on a small shapes set: the manager, not the model, is under test."""
    real_load = data.load
    monkeypatch.setattr(data, "load", lambda source, *a, **k: small_shapes if source == "shapes" else real_load(source, *a, **k))


@pytest.fixture
def managers():
    """RunManagers made by a test, shut down after it whatever happened."""
    made = []

    def make(*args, **kwargs):
        made.append(RunManager(*args, **kwargs))
        return made[-1]

    yield make
    for manager in made:
        manager.shutdown()


@pytest.fixture
def held_loader(monkeypatch, managers):
    """Runs that reach their device slot wait in 'loading' until the test sets the returned event.

    Released before the managers shut down (it depends on them), so a failing test does not hang.
    """
    release, real_load = threading.Event(), data.load

    def load(*args, **kwargs):
        assert release.wait(60), "the test never released the loader"
        return real_load(*args, **kwargs)

    monkeypatch.setattr(data, "load", load)
    yield release
    release.set()


def statuses(manager, ids):
    return [manager.get(i).status for i in ids]


def test_runs_wait_their_turn_with_their_positions(tmp_path, held_loader, managers):
    manager = managers(tmp_path, max_per_device=1, max_queue=16)
    ids = [manager.submit(TINY.replace(seed=i), owner=f"student-{i}") for i in range(4)]
    wait_for(lambda: manager.get(ids[0]).status == "loading")
    assert statuses(manager, ids) == ["loading", "queued", "queued", "queued"]
    assert [manager.get(i).queue_position for i in ids] == [0, 1, 2, 3]
    manager.stop(ids[1])  # leaves the queue before it started: the ones behind move up
    assert manager.get(ids[1]).status == "stopped" and "before it started" in manager.get(ids[1]).message
    assert [manager.get(i).queue_position for i in ids] == [0, 0, 1, 2]
    held_loader.set()
    ended = [manager.wait(i, timeout=60) for i in ids]
    assert [s.status for s in ended] == ["finished", "stopped", "finished", "finished"]
    started = [s.started for s in ended if s.status == "finished"]
    assert started == sorted(started)  # first come, first served
    assert ended[1].started is None and ended[1].losses == ()


def test_the_queue_is_capped_with_a_clear_message(tmp_path, held_loader, managers):
    manager = managers(tmp_path, max_per_device=1, max_queue=2)
    first = manager.submit(TINY, owner="a")  # takes the free slot: it does not wait, so it is not in the queue
    queued = [manager.submit(TINY, owner=s) for s in ("b", "c")]
    with pytest.raises(RunRefused, match="the class is busy: 2 runs are already waiting"):
        manager.submit(TINY, owner="d")
    assert len(manager.list()) == 3 and not (tmp_path / "d").exists()
    manager.stop(queued[0])  # a place frees up
    late = manager.submit(TINY, owner="d")
    held_loader.set()
    assert [manager.wait(i, 60).status for i in (first, queued[1], late)] == ["finished"] * 3


def test_two_slots_per_device_run_two_at_once(tmp_path, held_loader, managers):
    manager = managers(tmp_path, max_per_device=2, max_queue=1)
    ids = [manager.submit(TINY, owner=s) for s in "abc"]
    with pytest.raises(RunRefused, match="the class is busy"):
        manager.submit(TINY, owner="d")
    wait_for(lambda: statuses(manager, ids) == ["loading", "loading", "queued"])
    assert manager.get(ids[2]).queue_position == 1
    held_loader.set()
    assert [manager.wait(i, 60).status for i in ids] == ["finished"] * 3


def test_one_active_run_per_session(tmp_path, managers):
    manager = managers(tmp_path, max_per_device=1, max_queue=16)
    mine = manager.submit(TINY.replace(epochs=3, max_steps=50), owner="alice")
    with pytest.raises(RunRefused, match=f"you already have a run going \\({mine}\\)"):
        manager.submit(TINY, owner="alice")
    assert manager.active_run("alice").id == mine and manager.active_run("bob") is None
    theirs = manager.submit(TINY, owner="bob")  # another session is not held back
    cli = [manager.submit(TINY), manager.submit(TINY)]  # no session (the command line): no limit
    manager.stop(mine)
    assert manager.wait(mine, 60).status == "stopped"
    again = manager.submit(TINY, owner="alice")  # once it has ended, alice may start another
    assert all(manager.wait(i, 60).status == "finished" for i in [theirs, *cli, again])
    assert manager.active_run("alice") is None


def test_a_session_whose_run_is_queued_cannot_start_another(tmp_path, held_loader, managers):
    manager = managers(tmp_path, max_per_device=1, max_queue=16)
    ahead = manager.submit(TINY)  # holds the device slot
    mine = manager.submit(TINY, owner="alice")
    assert manager.get(mine).status == "queued"
    with pytest.raises(RunRefused, match=f"you already have a run going \\({mine}\\)"):
        manager.submit(TINY, owner="alice")
    held_loader.set()
    assert [manager.wait(i, 60).status for i in (ahead, mine)] == ["finished", "finished"]
    assert len(manager.list()) == 2  # the refused click left nothing behind


def test_many_sessions_submit_at_once_and_every_run_ends(tmp_path, held_loader, managers, monkeypatch):
    """24 students click Start together: 2 run, 16 wait, 6 are told the class is busy; nothing is lost."""
    from classroom import runs

    manager = managers(tmp_path, max_per_device=2, max_queue=16)
    running, most, count_lock, real_train = [0], [0], threading.Lock(), runs.train

    def counted_train(*args, **kwargs):
        with count_lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            return real_train(*args, **kwargs)
        finally:
            with count_lock:
                running[0] -= 1

    monkeypatch.setattr(runs, "train", counted_train)
    students = 24
    start, accepted, refused, lock = threading.Barrier(students), {}, {}, threading.Lock()

    def student(i):
        start.wait(30)
        try:
            run_id = manager.submit(TINY.replace(seed=i), owner=f"student-{i}")
            with lock:
                accepted[i] = run_id
        except RunRefused as e:
            with lock:
                refused[i] = str(e)

    threads = [threading.Thread(target=student, args=(i,), daemon=True) for i in range(students)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    assert len(accepted) == 2 + 16 and len(refused) == students - 18
    assert all(m.startswith("the class is busy") for m in refused.values())
    wait_for(lambda: statuses(manager, accepted.values()).count("loading") == 2)
    queued = sorted(manager.get(i).queue_position for i in accepted.values())
    assert queued == [0, 0, *range(1, 17)]
    held_loader.set()
    ended = {i: manager.wait(run_id, timeout=120) for i, run_id in accepted.items()}
    assert {s.status for s in ended.values()} == {"finished"}
    assert most[0] == 2  # never more than the device's slots at once
    assert len(set(accepted.values())) == 18 and {s.id for s in manager.list()} == set(accepted.values())
    for run_id in accepted.values():
        assert json.loads((tmp_path / run_id / "results.json").read_text())["status"] == "finished"
        assert (tmp_path / run_id / "checkpoint.pt").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(accepted.values())


def test_a_restarted_server_lists_earlier_runs(tmp_path, managers):
    first = managers(tmp_path)
    done = first.wait(first.submit(TINY.replace(name="before the restart"), owner="s"), 60)
    assert done.status == "finished"
    second = managers(tmp_path)
    again = second.get(done.id)
    assert again.status == "finished" and again.config == done.config and again.owner is None
    assert again.losses == done.losses and again.epochs == done.epochs
    assert again.classes == done.classes and again.data_label == done.data_label
    assert again.started == pytest.approx(done.started) and again.ended == pytest.approx(done.ended)
    evaluation, dataset = second.evaluation(done.id)  # recomputed from the checkpoint
    assert evaluation.accuracy == pytest.approx(done.epochs[-1]["test_accuracy"])
    assert dataset.classes == done.classes
    newer = second.wait(second.submit(TINY, owner="s"), 60)  # and takes new runs beside them
    assert [s.id for s in second.list()] == [newer.id, done.id]


def test_a_run_cut_off_by_a_restart_is_interrupted_with_its_metrics_so_far(tmp_path, managers):
    dying = managers(tmp_path)
    config = TINY.replace(epochs=3, max_steps=4)
    run_id = dying.submit(config, owner="s")
    wait_for(lambda: (s := dying.get(run_id)).epochs and s.last_batch["global_step"] >= 6)
    dying.pause(run_id)  # the server "dies" here: no results.json yet
    wait_for(lambda: dying.get(run_id).status == "paused")
    time.sleep(0.2)  # let the loop reach its pause point, so the log stops growing
    cut = dying.get(run_id)
    folder = tmp_path / run_id
    assert not (folder / "results.json").exists()
    with open(folder / "metrics.jsonl", "a") as f:
        f.write('{"kind": "batch", "epoch": 2, "step": 3, "glo')  # the last line, half written as it died

    restarted = managers(tmp_path)
    run = restarted.get(run_id)
    assert run.status == "interrupted" and "server stopped" in run.message
    assert run.losses == cut.losses and run.epochs == cut.epochs and run.last_batch == cut.last_batch
    assert run.classes == cut.classes  # from the per-class accuracy of the last epoch
    assert cut.last_batch["total_steps"] == 3 * 4 and run.progress == cut.last_batch["global_step"] / 12
    assert run.ended is not None and not run.active
    assert restarted.active_run("s") is None
    saved = json.loads((folder / "results.json").read_text())
    assert saved["status"] == "interrupted"

    ended = run.ended
    third = managers(tmp_path)  # a second restart keeps it as it was
    assert third.get(run_id).status == "interrupted" and third.get(run_id).ended == pytest.approx(ended)
    assert third.get(run_id).losses == cut.losses


def test_damaged_run_folders_do_not_stop_the_server(tmp_path, managers):
    good = managers(tmp_path)
    run_ids = [good.submit(TINY) for _ in range(5)]
    for run_id in run_ids:
        assert good.wait(run_id, 60).status == "finished"
    a, b, c, d, e = (tmp_path / i for i in run_ids)
    (a / "metrics.jsonl").write_bytes(b"\xff\xfe not utf-8 \x00\n")
    (b / "metrics.jsonl").write_text('[1, 2]\n42\n{"kind": "batch"}\n{"kind": "epoch"}\n')
    (c / "results.json").write_text("[]")
    (d / "config.json").write_text("{not json")
    (e / "results.json").write_text('{"status": 7}')
    (tmp_path / "not-a-run").mkdir()
    (tmp_path / "20990101-000000-abcdef").mkdir()

    restarted = managers(tmp_path)
    listed = {s.id: s for s in restarted.list()}
    assert set(listed) == {a.name, b.name, c.name, d.name, e.name}  # the empty folders are no runs
    reasons = {folder: listed[folder.name].message for folder in (a, b, c, d, e)}
    assert all(listed[i].status == "damaged" and listed[i].losses == () for i in listed)
    assert reasons == {
        a: "damaged record: metrics.jsonl line 1: not UTF-8 text",
        b: "damaged record: metrics.jsonl line 1: not an object",
        c: "damaged record: results.json: not an object",
        d: "damaged record: config.json: not JSON",
        e: "damaged record: results.json: status is not one of finished, stopped, failed, interrupted",
    }
    assert (c / "results.json").read_text() == "[]"  # left as found, not rewritten as interrupted


def test_run_ids_never_collide(tmp_path, managers, monkeypatch):
    from classroom import runs

    ids = iter(["20260101-000000-aaaaaa", "20260101-000000-aaaaaa", "20260101-000000-bbbbbb"])
    monkeypatch.setattr(runs, "_new_id", lambda: next(ids))
    manager = managers(tmp_path)
    first = manager.submit(TINY)
    second = manager.submit(TINY)
    assert first != second and {s.id for s in manager.list()} == {first, second}
