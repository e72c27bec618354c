"""Data sources and their error paths, and the on-device transforms."""

import hashlib
import io
import pickle
import tarfile
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms
from torchvision.datasets import CIFAR10

from classroom import data
from classroom.data import DataError


@pytest.fixture(autouse=True)
def fresh_cache():
    data._cache.clear()
    data._live.clear()
    yield
    data._cache.clear()
    data._live.clear()


def test_shapes_is_deterministic_labelled_and_synthetic():
    a, b = data.make_shapes(n_train=200, n_test=50), data.make_shapes(n_train=200, n_test=50)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert a.train_x.shape == (200, 3, 32, 32) and a.train_x.dtype == torch.uint8
    assert a.synthetic and a.label == "shapes (synthetic)" and len(a.classes) == 10
    assert sorted(a.train_y.unique().tolist()) == list(range(10))


def test_load_keeps_one_copy_per_process(tmp_path):
    assert data.load("shapes", tmp_path) is data.load("shapes", tmp_path)
    assert len(data.loaded()) == 1


def test_a_slow_load_holds_up_no_one_else(tmp_path, monkeypatch):
    """The first CIFAR-10 decode takes a while: every page's sidebar and every run on a loaded set go on meanwhile."""
    shapes = data.load("shapes", tmp_path)
    started, release = threading.Event(), threading.Event()

    def slow_folder(*args):
        started.set()
        release.wait(30)
        return shapes

    monkeypatch.setattr(data, "load_folder", slow_folder)
    loader = threading.Thread(target=data.load, args=(f"folder:{tmp_path}", tmp_path), daemon=True)
    loader.start()
    try:
        assert started.wait(10)
        begin = time.monotonic()
        assert shapes in data.loaded() and data.load("shapes", tmp_path) is shapes
        assert time.monotonic() - begin < 1
    finally:
        release.set()
        loader.join(30)
    assert not loader.is_alive()


def test_unknown_source_is_refused(tmp_path):
    with pytest.raises(DataError, match="unknown data source"):
        data.load("imagenet", tmp_path)


# --- cifar10 ---------------------------------------------------------------------------------


def write_fake_cifar10(root, n=20):
    """torchvision's on-disk CIFAR-10 layout with random pixels; returns the md5 of each batch."""
    folder = root / CIFAR10.base_folder
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    md5s = {}
    for name, _ in CIFAR10.train_list + CIFAR10.test_list:
        batch = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "labels": list(rng.integers(0, 10, n))}
        (folder / name).write_bytes(pickle.dumps(batch))
        md5s[name] = hashlib.md5((folder / name).read_bytes()).hexdigest()
    meta = {"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]}
    (folder / CIFAR10.meta["filename"]).write_bytes(pickle.dumps(meta))
    return md5s


def test_missing_cifar10_says_how_to_get_it(tmp_path):
    with pytest.raises(DataError, match="python -m classroom download"):
        data.load("cifar10", tmp_path)


def test_a_corrupt_cifar10_is_refused_with_the_way_out(tmp_path):
    write_fake_cifar10(tmp_path)  # checksums differ from the real files
    with pytest.raises(DataError, match="damaged.*download it again"):
        data.load("cifar10", tmp_path)


def trust_fake_cifar10(root, md5s, monkeypatch):
    """Make torchvision's integrity check accept the fake batches in root (it knows the real files' checksums)."""
    monkeypatch.setattr(CIFAR10, "train_list", [[k, md5s[k]] for k, _ in CIFAR10.train_list])
    monkeypatch.setattr(CIFAR10, "test_list", [[k, md5s[k]] for k, _ in CIFAR10.test_list])
    monkeypatch.setitem(CIFAR10.meta, "md5", hashlib.md5((root / CIFAR10.base_folder / "batches.meta").read_bytes()).hexdigest())


def test_cifar10_layout_loads_as_uint8_tensors(tmp_path, monkeypatch):
    trust_fake_cifar10(tmp_path, write_fake_cifar10(tmp_path), monkeypatch)
    d = data.load("cifar10", tmp_path)
    assert d.train_x.shape == (100, 3, 32, 32) and d.test_x.shape == (20, 3, 32, 32)
    assert d.train_x.dtype == torch.uint8 and d.classes[0] == "plane" and not d.synthetic


def test_cifar10_images_load_the_right_way_up(tmp_path, monkeypatch):
    """Pixel for pixel as the batch files hold them: each row of a batch is 1024 red, 1024 green, then 1024 blue
    values, each 32 rows of 32 from the top left; random pixels, so a transposed or mirrored image differs."""
    trust_fake_cifar10(tmp_path, write_fake_cifar10(tmp_path), monkeypatch)
    d = data.load("cifar10", tmp_path)
    folder = tmp_path / CIFAR10.base_folder
    rows = [pickle.loads((folder / name).read_bytes())["data"] for name, _ in CIFAR10.train_list]
    assert torch.equal(d.train_x, torch.from_numpy(np.concatenate(rows).reshape(-1, 3, 32, 32)))
    test_rows = pickle.loads((folder / "test_batch").read_bytes())["data"]
    assert torch.equal(d.test_x, torch.from_numpy(test_rows.reshape(-1, 3, 32, 32)))


class FakeResponse(io.BytesIO):
    def __init__(self, body, length):
        super().__init__(body)
        self.headers = {"Content-Length": str(length)}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_a_download_cut_off_halfway_is_never_trusted(tmp_path, monkeypatch):
    monkeypatch.setattr(data.urllib.request, "urlopen", lambda url, timeout: FakeResponse(b"x" * 1000, 5000))
    seen = []
    with pytest.raises(DataError, match="incomplete"):
        data.download_cifar10(tmp_path, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (1000, 5000)
    assert not list(tmp_path.glob("*.part")) and not (tmp_path / CIFAR10.filename).exists()


def test_a_failed_download_names_the_alternatives(tmp_path, monkeypatch):
    def refuse(url, timeout):
        raise OSError("network unreachable")

    monkeypatch.setattr(data.urllib.request, "urlopen", refuse)
    with pytest.raises(DataError, match="could not download CIFAR-10.*shapes or folder:PATH"):
        data.download_cifar10(tmp_path)


def test_a_complete_download_is_extracted(tmp_path, monkeypatch):
    src = tmp_path / "src"
    write_fake_cifar10(src)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(src / CIFAR10.base_folder, arcname=CIFAR10.base_folder)
    body = buffer.getvalue()
    monkeypatch.setattr(CIFAR10, "tgz_md5", hashlib.md5(body).hexdigest())
    monkeypatch.setattr(data.urllib.request, "urlopen", lambda url, timeout: FakeResponse(body, len(body)))
    out = tmp_path / "data"
    data.download_cifar10(out)
    assert data.cifar10_present(out)


# --- folder:PATH ---------------------------------------------------------------------------------


def write_folder(root, classes=("cats", "dogs"), per_class=3, size=(40, 28), mode="RGB"):
    for split in ("train", "test"):
        for i, c in enumerate(classes):
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for k in range(per_class):
                Image.new(mode, size, color=(40 * i + k,) * len(mode) if mode != "L" else 40 * i + k).save(
                    root / split / c / f"{k}.png"
                )


def test_image_folder_loads_resized_and_is_cached_decoded(tmp_path):
    write_folder(tmp_path / "imgs", mode="RGBA")
    d = data.load(f"folder:{tmp_path / 'imgs'}", tmp_path / "cache-dir")
    assert d.classes == ("cats", "dogs") and d.train_x.shape == (6, 3, 32, 32) and d.test_y.tolist() == [0, 0, 0, 1, 1, 1]
    assert len(list((tmp_path / "cache-dir" / "cache").glob("folder-*.npz"))) == 1
    data._cache.clear()
    data._live.clear()  # forget d too: the set is read back from the cache file
    again = data.load(f"folder:{tmp_path / 'imgs'}", tmp_path / "cache-dir")
    assert torch.equal(again.train_x, d.train_x)


@pytest.mark.parametrize(
    "breakage, message",
    [
        ("no_test", "test is not a folder"),
        ("one_class", "at least 2"),
        ("empty_class", "holds no images"),
        ("mismatch", "different classes"),
        ("unreadable", "not a readable image"),
    ],
)
def test_a_broken_image_folder_gets_a_clear_error(tmp_path, breakage, message):
    root = tmp_path / "imgs"
    write_folder(root, classes=("a",) if breakage == "one_class" else ("a", "b"))
    if breakage == "no_test":
        for f in (root / "test").rglob("*.png"):
            f.unlink()
        for d in sorted((root / "test").iterdir()):
            d.rmdir()
        (root / "test").rmdir()
    elif breakage == "empty_class":
        (root / "train" / "c").mkdir()
        (root / "test" / "c").mkdir()
    elif breakage == "mismatch":
        (root / "test" / "b").rename(root / "test" / "z")
    elif breakage == "unreadable":
        (root / "train" / "a" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(DataError, match=message):
        data.load(f"folder:{root}", tmp_path)


def test_an_image_folder_is_listed_file_for_file_as_torchvision_lists_it(tmp_path):
    """The lab sees the images the generated script (ImageFolder) sees, with the same labels, in the same order."""
    from torchvision.datasets import ImageFolder

    root = tmp_path / "imgs"
    names = [
        "a.png", "B.PNG", "c.JpEg", "d.pgm", "e.gif", "f.txt", "no-extension", ".hidden.jpg", ".DS_Store",
        "sub/g.png", "sub/k.GIF", "sub/deeper/h.bmp", "sub-2/i.tif", ".thumbs/j.webp", "looks-like.png/l.ppm",
    ]  # fmt: skip
    for split in ("train", "test"):
        for c in ("cats", "dogs", ".hidden-class"):
            for name in names:
                (root / split / c / name).parent.mkdir(parents=True, exist_ok=True)
                (root / split / c / name).write_bytes(b"")  # only names count here; nothing is decoded
        (root / split / "dogs" / "linked").symlink_to(root / split / "cats" / "sub")  # a link to a folder: followed
    splits = data.folder_splits(root)
    for split, classes in splits.items():
        reference = ImageFolder(str(root / split))
        assert list(classes) == reference.classes
        assert [(str(p), label) for label, paths in enumerate(classes.values()) for p in paths] == reference.samples
    cats = [str(p.relative_to(root / "train" / "cats")) for p in splits["train"]["cats"]]
    assert cats == [
        ".hidden.jpg", "B.PNG", "a.png", "c.JpEg", "d.pgm", ".thumbs/j.webp", "looks-like.png/l.ppm",
        "sub/g.png", "sub-2/i.tif", "sub/deeper/h.bmp",
    ]  # fmt: skip
    assert list(splits["train"]) == [".hidden-class", "cats", "dogs"]


def test_a_link_back_up_an_image_folder_is_not_followed_round(tmp_path):
    """ImageFolder would walk cats/self/sub/back/self/... round and round; the lab lists each image once and finishes."""
    write_folder(tmp_path / "imgs")
    cats = tmp_path / "imgs" / "train" / "cats"
    (cats / "self").symlink_to(".")
    (cats / "sub").mkdir()
    (cats / "sub" / "back").symlink_to(cats)
    assert [p.name for p in data.folder_splits(tmp_path / "imgs")["train"]["cats"]] == ["0.png", "1.png", "2.png"]


def test_a_missing_folder_names_the_path(tmp_path):
    with pytest.raises(DataError, match=str(tmp_path / "nowhere")):
        data.load(f"folder:{tmp_path / 'nowhere'}", tmp_path)


@pytest.mark.parametrize("mode, size", [("L", (7, 5)), ("RGBA", (1, 1)), ("P", (64, 48)), ("RGB", (32, 32))])
def test_decode_image_gives_rgb_32x32(mode, size):
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, format="PNG")
    assert data.decode_image(buffer.getvalue()).shape == (3, 32, 32)


def test_decode_image_keeps_rows_as_rows_and_columns_as_columns():
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)  # H, W, RGB: every pixel its own
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    assert torch.equal(data.decode_image(buffer.getvalue()), torch.from_numpy(pixels).permute(2, 0, 1))
    wide = np.zeros((16, 64, 3), dtype=np.uint8)  # 16 rows of 64: red on the left half, black on the right
    wide[:, :32, 0] = 255
    buffer = io.BytesIO()
    Image.fromarray(wide).save(buffer, format="PNG")
    red = data.decode_image(buffer.getvalue())[0]  # resized to 32x32
    assert red[:, :15].min() == 255 and red[:, 17:].max() == 0  # still red on the left, on every row


@pytest.mark.parametrize("payload", [b"", b"GIF89a", b"hello world", b"\x89PNG\r\n\x1a\n" + b"\0" * 20])
def test_decode_image_refuses_what_is_not_an_image(payload):
    with pytest.raises(DataError):
        data.decode_image(payload, name="upload.png")


def test_decode_image_refuses_a_decompression_bomb():
    buffer = io.BytesIO()
    Image.new("1", (10000, 10000)).save(buffer, format="PNG")  # 100 megapixels in a few kilobytes
    assert len(buffer.getvalue()) < 100_000
    with pytest.raises(DataError, match="too large"):
        data.decode_image(buffer.getvalue())


# --- on-device transforms ----------------------------------------------------------------------


def test_normalize_matches_totensor_and_normalize_bit_for_bit():
    """Exactly: the generated script normalises with torchvision's arithmetic, and one rounding apart is enough for
    fast-cnn's weights to part ways within a few steps (tests/test_script.py)."""
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    reference = transforms.Normalize((0.5, 0.4, 0.3), (0.2, 0.25, 0.3))(transforms.ToTensor()(x[0].permute(1, 2, 0).numpy()))
    assert torch.equal(data.normalize(x, (0.5, 0.4, 0.3), (0.2, 0.25, 0.3))[0], reference)


def test_random_crop_flip_returns_crops_of_the_reflect_padded_image():
    g = torch.Generator().manual_seed(1)
    x = torch.randint(1, 256, (16, 3, 32, 32), dtype=torch.uint8)
    out = data.random_crop_flip(x, pad=4, generator=g)
    assert out.shape == x.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(x.float(), (4, 4, 4, 4), mode="reflect").to(torch.uint8)
    for i in range(16):
        crops = [padded[i, :, dy : dy + 32, dx : dx + 32] for dy in range(9) for dx in range(9)]
        assert any(torch.equal(out[i], c) or torch.equal(out[i], c.flip(2)) for c in crops)
    assert not torch.equal(out, x)


def test_random_crop_flip_mirrors_exactly_the_images_it_is_told_to():
    x = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8)
    flip = torch.tensor([True, False, True, False, False, True])
    out = data.random_crop_flip(x, pad=0, flip=flip)
    for i in range(6):
        assert torch.equal(out[i], x[i].flip(2) if flip[i] else x[i])
