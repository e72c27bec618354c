"""folder:PATH sources from a server: one copy per folder however it is spelt, bounded memory, allowed roots only."""

import gc
import os
import socket

import pytest

from classroom import data
from classroom.data import DataError
from tests.test_data import write_folder


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch):
    for name in ("CLASSROOM_MAX_DATASETS", "CLASSROOM_MAX_DATA_MB", "CLASSROOM_DATA_ROOTS"):
        monkeypatch.delenv(name, raising=False)
    data._cache.clear()
    data._live.clear()
    yield
    data._cache.clear()
    data._live.clear()


@pytest.fixture
def decodes(monkeypatch):
    """How many times each folder was decoded (loaded from its files, not from memory)."""
    counts, real = {}, data.load_folder

    def counting(root, *args):
        counts[str(root)] = counts.get(str(root), 0) + 1
        return real(root, *args)

    monkeypatch.setattr(data, "load_folder", counting)
    return counts


def folders(tmp_path, *names):
    for name in names:
        write_folder(tmp_path / name, per_class=1)
    return [f"folder:{tmp_path / name}" for name in names]


def names():
    gc.collect()
    return sorted(d.name for d in data.loaded())


# --- one copy per folder -----------------------------------------------------------------------


def test_every_spelling_of_a_folder_is_one_set_named_by_its_real_path(tmp_path):
    write_folder(tmp_path / "imgs")
    (tmp_path / "link").symlink_to(tmp_path / "imgs")
    spellings = [f"{tmp_path}/imgs", f"{tmp_path}//imgs/", f"{tmp_path}/imgs/../imgs", f"{tmp_path}/./link"]
    first = data.load(f"folder:{spellings[0]}", tmp_path)
    assert all(data.load(f"folder:{s}", tmp_path) is first for s in spellings)
    assert first.name == f"folder:{os.path.realpath(tmp_path / 'imgs')}" and len(data.loaded()) == 1


def test_every_spelling_of_a_folder_shares_one_decoded_cache_file(tmp_path):
    write_folder(tmp_path / "imgs")
    (tmp_path / "link").symlink_to(tmp_path / "imgs")
    for spelling in (f"{tmp_path}/imgs", f"{tmp_path}/imgs/", f"{tmp_path}/link"):
        data.load(f"folder:{spelling}", tmp_path / "data")
        data._cache.clear()
        data._live.clear()
    assert len(list((tmp_path / "data" / "cache").glob("folder-*.npz"))) == 1


# --- bounded memory ----------------------------------------------------------------------------


def test_the_least_recently_used_set_is_dropped_past_the_count(tmp_path, monkeypatch, decodes):
    monkeypatch.setenv("CLASSROOM_MAX_DATASETS", "2")
    a, b, c = folders(tmp_path, "a", "b", "c")
    for source in (a, b, a, c):  # b is the least recently used when c comes
        data.load(source, tmp_path)
    assert names() == [a, c]
    data.load(b, tmp_path)
    assert sorted(decodes.values()) == [1, 1, 2]


def test_sets_past_the_size_budget_are_dropped(tmp_path, monkeypatch):
    monkeypatch.setenv("CLASSROOM_MAX_DATA_MB", "1")
    (a,) = folders(tmp_path, "a")
    data.load(a, tmp_path)
    assert names() == [a]  # a few kilobytes fit
    shapes = data.load("shapes", tmp_path)  # 37 MB do not: nothing stays in the cache
    assert names() == ["shapes"]  # held by this test, as by a run
    del shapes
    assert names() == []


def test_a_set_still_in_use_is_never_decoded_twice(tmp_path, monkeypatch, decodes):
    monkeypatch.setenv("CLASSROOM_MAX_DATASETS", "1")
    a, b = folders(tmp_path, "a", "b")
    in_use = data.load(a, tmp_path)
    data.load(b, tmp_path)  # drops the cache's reference to a, not the run's
    assert data.load(a, tmp_path) is in_use and names() == [a]
    data.load(b, tmp_path)  # b was used by no one: decoded again
    assert decodes == {str(tmp_path / "a"): 1, str(tmp_path / "b"): 2}


# --- allowed roots -----------------------------------------------------------------------------


def test_a_folder_inside_an_allowed_root_loads(tmp_path):
    (inside,) = folders(tmp_path / "allowed", "imgs")
    assert data.load(inside, tmp_path, roots=[tmp_path / "allowed"]).classes == ("cats", "dogs")
    data.check_folder(inside, roots=[tmp_path / "elsewhere", tmp_path / "allowed"])
    data.check_folder(f"folder:{tmp_path / 'allowed' / 'imgs'}", roots=[tmp_path / "allowed" / "imgs"])


@pytest.mark.parametrize("way_out", ["sibling", "dotdot", "symlink", "prefix", "system"])
def test_a_folder_outside_the_allowed_roots_is_refused(tmp_path, way_out):
    folders(tmp_path, "outside", "allowed-too")
    (tmp_path / "allowed").mkdir()
    (tmp_path / "allowed" / "link").symlink_to(tmp_path / "outside")  # a link that leads out of the root
    path = {
        "sibling": tmp_path / "outside",
        "dotdot": f"{tmp_path}/allowed/../outside",
        "symlink": tmp_path / "allowed" / "link",
        "prefix": tmp_path / "allowed-too",  # shares the root's first letters, not its folder
        "system": "/etc",
    }[way_out]
    message = r"is outside the folders this server allows \(CLASSROOM_DATA_ROOTS\)"
    with pytest.raises(DataError, match=message):
        data.load(f"folder:{path}", tmp_path, roots=[tmp_path / "allowed"])
    with pytest.raises(DataError, match=message):
        data.check_folder(f"folder:{path}", roots=[tmp_path / "allowed"])
    assert not (tmp_path / "cache").exists() and data.loaded() == []


def test_allowed_roots_come_from_the_environment_or_are_the_data_dir(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "to-b").symlink_to(tmp_path / "b")
    assert data.allowed_roots(tmp_path / "a" / ".." / "a") == [tmp_path / "a"]
    monkeypatch.setenv("CLASSROOM_DATA_ROOTS", f"{tmp_path}/a/{os.pathsep}{tmp_path / 'to-b'}{os.pathsep}")
    assert data.allowed_roots("data") == [tmp_path / "a", tmp_path / "b"]
    monkeypatch.setenv("CLASSROOM_DATA_ROOTS", "")
    assert data.allowed_roots(tmp_path / "b") == [tmp_path / "b"]


# --- paths the file system refuses ---------------------------------------------------------------


@pytest.mark.parametrize(
    "path, message",
    [
        ("/tmp/" + "a" * 300, "cannot be listed"),  # one name over 255 bytes
        ("/tmp/" + "/".join(["b" * 200] * 25), "too long a path"),  # 5 kB, each name allowed
        ("/tmp/a\0b", "not a valid path"),
    ],
)
def test_a_path_the_file_system_refuses_is_one_clear_line(tmp_path, path, message):
    for attempt in (lambda: data.check_folder(f"folder:{path}"), lambda: data.load(f"folder:{path}", tmp_path)):
        with pytest.raises(DataError, match=message) as refused:
            attempt()
        assert "\n" not in str(refused.value) and len(str(refused.value)) < 300


def test_a_too_long_name_is_named_in_the_message(tmp_path):
    with pytest.raises(DataError, match="File name too long"):
        data.check_folder(f"folder:{tmp_path}/{'a' * 300}")


def test_an_image_that_cannot_be_read_is_named(tmp_path, monkeypatch):
    (root,) = folders(tmp_path, "imgs")
    # A socket named like an image: listed as a file (ImageFolder lists it too), yet no one can open it, root included.
    monkeypatch.chdir(tmp_path / "imgs" / "train" / "cats")  # bound by a relative name: socket paths stop at 108 bytes
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind("socket.png")
        with pytest.raises(DataError, match="socket.png cannot be read"):
            data.load(root, tmp_path)
