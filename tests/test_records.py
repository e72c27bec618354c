"""Run folders read back after a restart: damaged ones are listed with the reason and left exactly as they were."""

from __future__ import annotations

import json

import pytest

from classroom import records
from classroom.runs import RunManager
from tests import run_folders
from tests.run_folders import DAMAGE, write_run

RUN_ID = "20260101-120000-abc123"


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_a_damaged_record_is_listed_with_its_reason_and_left_as_it_was(tmp_path, damage):
    change, reason = DAMAGE[damage]
    folder = write_run(tmp_path, RUN_ID)
    write_run(tmp_path, "20260101-130000-def456")  # a sound run beside it
    change(folder)
    before = run_folders.files(tmp_path)

    manager = RunManager(tmp_path)
    listed = {s.id: s for s in manager.list()}  # sorting by time must not trip over it
    snap = listed[RUN_ID]
    assert snap.status == "damaged" and snap.message.startswith("damaged record: ") and reason in snap.message
    assert (snap.losses, snap.epochs, snap.last_batch) == ((), (), None) and not snap.active and snap.progress == 0
    sound = listed["20260101-130000-def456"]
    assert sound.status == "finished" and len(sound.losses) == 4 and len(sound.epochs) == 2 and sound.config == run_folders.CONFIG
    assert manager.checkpoint_path(RUN_ID) is None and manager.checkpoint(RUN_ID) is None
    assert manager.evaluation(RUN_ID) is None
    manager.stop(RUN_ID)
    manager.shutdown()
    RunManager(tmp_path)  # a second restart finds it the same way
    assert run_folders.files(tmp_path) == before  # byte for byte: nothing rewritten, appended or removed


def test_a_damaged_record_that_never_ended_is_not_marked_interrupted(tmp_path):
    folder = write_run(tmp_path, RUN_ID, ended=False)
    run_folders.edit_line(folder, "batch", lambda e: e.pop("epoch"))
    snap = RunManager(tmp_path).get(RUN_ID)
    assert snap.status == "damaged" and "epoch is not a whole number" in snap.message
    assert not (folder / "results.json").exists()


def test_a_checkpoint_beside_a_damaged_record_is_not_offered(tmp_path):
    folder = write_run(tmp_path, RUN_ID)
    (folder / "checkpoint.pt").write_bytes(b"whatever it holds")
    run_folders.edit_json(folder / "config.json", lambda m: m.update(created="yesterday"))
    assert RunManager(tmp_path).checkpoint_path(RUN_ID) is None


def test_an_oversized_file_is_damage_not_a_memory_spike(tmp_path, monkeypatch):
    monkeypatch.setattr(records, "MAX_FILE_BYTES", 1000)
    folder = write_run(tmp_path, RUN_ID)
    run_folders.edit_json(folder / "config.json", lambda m: m.update(padding="x" * 2000))
    assert "larger than" in RunManager(tmp_path).get(RUN_ID).message


def test_write_json_replaces_the_file_whole_and_leaves_no_tmp_when_it_fails(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    records.write_json(path, {"status": "finished"})
    assert json.loads(path.read_text()) == {"status": "finished"}
    monkeypatch.setattr(records.os, "replace", lambda *a: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    with pytest.raises(OSError):
        records.write_json(path, {"status": "failed"})
    assert json.loads(path.read_text()) == {"status": "finished"} and [p.name for p in tmp_path.iterdir()] == ["results.json"]
