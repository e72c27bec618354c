"""Lesson 7, the PyTorch CIFAR-10 tutorial run on a page: which data this server has, the set-up its code reads, the run.

The lesson's blocks are plain torch and torchvision reading a few names (DATA, CIFAR10, PATH, the sizes) that a set-up
defines: the page's from what the server holds (`find`), a notebook's from its own folder (`notebook_setup`), a plain
lessons.run's from the synthetic fallback (`preamble()`), so tests need no CIFAR-10.
"""

from __future__ import annotations

import atexit
import functools
import io
import os
import random
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from classroom import data, lessons, locale
from classroom import threads as cpu_threads
from classroom.data import make_shapes

SLUG = "07_classifier"
SHAPES_TRAIN, SHAPES_TEST = 4000, 1000  # the fallback set's size: written as PNG files in a few seconds


@dataclass(frozen=True)
class Settings:
    """The sizes the lesson's code trains with; the tutorial's own are batch 4, lr 0.001, 2 epochs, all images."""

    batch_size: int
    learning_rate: float
    epochs: int
    train_images: int  # a random part of the training set: the whole of CIFAR-10 takes minutes per epoch on a CPU
    test_images: int  # likewise of the test set


# Real photos (CIFAR-10 or an image folder): the tutorial's batch size and learning rate on 20,000 of the 50,000 training
# images, one epoch. Measured on the JPEG copy of CIFAR-10 (an image folder), one thread of a shared 2-core CPU:
# training 16-25 s, the whole page 20-30 s, 41 % on 2,000 test images, every class above 0 (bird and cat lowest, 9 %).
REAL = Settings(batch_size=4, learning_rate=0.001, epochs=1, train_images=20000, test_images=2000)
# The synthetic shapes: at the tutorial's settings Net still answers one class for everything after 1,000 mini-batches
# (10 %). Batches of 16 at lr 0.02 for 3 epochs, measured the same way: training 6-7 s, 85 %, the worst class 61 %
# (seeds 0-2, in memory on the 10,000-image set: 89-92 %, the worst class 55-75 %; after 2 epochs only 16-32 %).
SYNTHETIC = Settings(batch_size=16, learning_rate=0.02, epochs=3, train_images=SHAPES_TRAIN, test_images=SHAPES_TEST)


@dataclass(frozen=True)
class Source:
    """Where the lesson's code reads its images, and why there."""

    kind: str  # "cifar10" (torchvision's files), "folder" (an ImageFolder tree) or "shapes" (the synthetic fallback)
    root: str  # the folder the code's DATA names
    found: str  # one line for the page: what it found, or why it fell back to the synthetic set
    settings: Settings
    facts: tuple = ()  # the (name, value) pairs `found` is worded from, to word it in another language (describe)

    @property
    def synthetic(self) -> bool:
        return self.kind == "shapes"


# --- which data ------------------------------------------------------------------------------------------------


def find(data_dir: str | os.PathLike, roots: list | None = None) -> Source:
    """CIFAR-10 in data_dir if intact, else the first image folder in or just below a root, else the shapes set."""
    data_dir = str(data_dir)
    cifar = _cifar10_state(data_dir)
    if cifar == "intact":
        facts = (("folder", data_dir),)
        return Source("cifar10", data_dir, _describe("cifar10", dict(facts)), REAL, facts)
    for folder in _folders(roots if roots is not None else data.allowed_roots(data_dir), data_dir):
        try:
            splits = data.folder_splits(folder)
        except data.DataError:
            continue
        n_train = sum(len(files) for files in splits["train"].values())
        n_test = sum(len(files) for files in splits["test"].values())
        facts = (
            ("folder", str(folder)),
            ("classes", len(splits["train"])),
            ("train", n_train),
            ("test", n_test),
            ("cifar", cifar),
        )
        return Source("folder", str(folder), _describe("folder", dict(facts)), _for_folder(n_train, n_test), facts)
    facts = (("cifar", cifar),)
    return Source("shapes", str(_workdir() / "shapes"), _describe("shapes", dict(facts)), SYNTHETIC, facts)


def describe(source: Source, language: str = "en") -> str:
    """The source's line for the page (Source.found) in the language given."""
    return _describe(source.kind, dict(source.facts), language) if source.facts else source.found


def _describe(kind: str, facts: dict, language: str = "en") -> str:
    _ = locale.translations(language).gettext
    if kind == "cifar10":
        return _("This page found CIFAR-10 in `{folder}` on the server: the code below trains on it.").format(**facts)
    damaged = facts["cifar"] == "damaged"
    if kind == "folder":
        if damaged:
            found = _(
                "This page found the image folder `{folder}` on the server ({classes} classes, {train} training and {test} "
                "test images; CIFAR-10 itself is damaged (delete it and download it again)): the code below trains on it."
            )
        else:
            found = _(
                "This page found the image folder `{folder}` on the server ({classes} classes, {train} training and {test} "
                "test images; CIFAR-10 itself is not downloaded): the code below trains on it."
            )
        sizes = {"train": locale.integer(facts["train"], language), "test": locale.integer(facts["test"], language)}
        return found.format(**(facts | sizes))
    if damaged:
        return _(
            "This page fell back to the synthetic **shapes** set: CIFAR-10 is damaged (delete it and download it again) on "
            "this server, and no image folder lies in its data folders. These are coloured shapes and textures, not photos, "
            "saved as PNG files so that the code below reads them exactly as it would read CIFAR-10 saved as an image "
            "folder. Download CIFAR-10 in the lab (Train the CNN) and this page trains on it instead."
        )
    return _(
        "This page fell back to the synthetic **shapes** set: CIFAR-10 is not downloaded on this server, and no image "
        "folder lies in its data folders. These are coloured shapes and textures, not photos, saved as PNG files so that "
        "the code below reads them exactly as it would read CIFAR-10 saved as an image folder. Download CIFAR-10 in the "
        "lab (Train the CNN) and this page trains on it instead."
    )


def fallback() -> Source:
    """The synthetic shapes set, whatever the server holds: what tests and a plain lessons.run train on."""
    return Source("shapes", str(_workdir() / "shapes"), "the synthetic shapes set", SYNTHETIC)


def _cifar10_state(data_dir: str) -> str:
    """ "absent", "damaged" or "intact" (every file's md5 checked, as torchvision checks before it reads)."""
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import check_integrity

    if not data.cifar10_present(data_dir):
        return "absent"
    files = CIFAR10.train_list + CIFAR10.test_list
    intact = all(check_integrity(os.path.join(data_dir, CIFAR10.base_folder, name), md5) for name, md5 in files)
    return "intact" if intact else "damaged"


def _folders(roots: list, data_dir: str):
    """Each root, then its subfolders in sorted order (the data dir's decoded-image cache left out)."""
    skip = Path(os.path.realpath(os.path.join(data_dir, "cache")))
    for root in roots:
        yield Path(os.path.realpath(root))
        try:
            with os.scandir(root) as entries:
                below = sorted(e.path for e in entries if e.is_dir() and not e.name.startswith("."))
        except OSError:
            continue
        yield from (real for p in below if (real := Path(os.path.realpath(p))) != skip)


def _for_folder(n_train: int, n_test: int) -> Settings:
    """REAL's settings on a folder of any size: at most REAL's images, and as many epochs as REAL's image count allows."""
    images = min(REAL.train_images, n_train)
    epochs = max(1, min(5, REAL.train_images // max(1, n_train)))
    return Settings(REAL.batch_size, REAL.learning_rate, epochs, images, min(REAL.test_images, n_test))


# --- the set-up the lesson's code reads ------------------------------------------------------------------------

_work_lock = threading.Lock()


WORKDIR_PREFIX = "torch-classroom-tutorial-"  # then the process id, then mkdtemp's random part


@functools.lru_cache(maxsize=1)
def _workdir() -> Path:
    """This process's own temporary folder (the shapes set, saved weights), removed when the process exits."""
    _remove_stale()
    path = Path(tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def _remove_stale() -> None:
    """Remove the folders of ended processes that never cleaned up: a server stopped by a signal skips atexit."""
    for folder in Path(tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}*-*"):
        pid = folder.name[len(WORKDIR_PREFIX) :].split("-")[0]
        try:
            if not pid.isdigit() or folder.stat().st_uid != os.getuid():
                continue
            os.kill(int(pid), 0)  # raises when no such process: only then is the folder an orphan
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            continue  # alive under another user, or gone meanwhile


def write_shapes(root="shapes", n_train=SHAPES_TRAIN, n_test=SHAPES_TEST):
    """The synthetic shapes set as an image folder of PNG files, root/train/<class>/ and root/test/<class>/; made once."""
    if os.path.isdir(root):
        return root
    shapes = make_shapes(n_train=n_train, n_test=n_test)
    part = f"{root}.part"  # written aside, then renamed: a folder cut off half-way is never taken for the set
    shutil.rmtree(part, ignore_errors=True)
    for split, images, labels in (("train", shapes.train_x, shapes.train_y), ("test", shapes.test_x, shapes.test_y)):
        for name in shapes.classes:
            os.makedirs(os.path.join(part, split, name))
        for i, (image, label) in enumerate(zip(images, labels)):
            path = os.path.join(part, split, shapes.classes[label], f"{i:05d}.png")
            Image.fromarray(image.permute(1, 2, 0).numpy()).save(path, compress_level=1)  # lossless, written fast
    os.rename(part, root)
    return root


def prepare(source: Source) -> None:
    """Write the shapes set to its folder if the source is the fallback and it is not there yet."""
    if source.synthetic:
        with _work_lock:
            write_shapes(source.root)


def weights_path() -> str:
    """A fresh file name for one run's trained weights (never another run's file), in this process's folder."""
    handle, path = tempfile.mkstemp(prefix="cifar_net-", suffix=".pth", dir=_workdir())
    os.close(handle)
    return path


def preamble(source: Source | None = None, path: str | None = None, language: str = "en") -> str:
    """The set-up code the lesson's blocks read, for this source (the synthetic fallback when None): plain Python, its
    comments in the language given."""
    _ = locale.translations(language).gettext
    source = source or fallback()
    prepare(source)
    s = source.settings
    what = {
        "cifar10": _("CIFAR-10, as torchvision saves it"),
        "folder": _("an image folder, with train/<class>/ and test/<class>/"),
        "shapes": _("the synthetic shapes set, saved as an image folder"),
    }[source.kind]
    tutorial = {
        "batch_size": _("the tutorial's") if s.batch_size == 4 else _("the tutorial: 4"),
        "learning_rate": _("the tutorial's") if s.learning_rate == 0.001 else _("the tutorial: 0.001"),
        "epochs": _("the tutorial: 2"),
        "train_images": _("a random part of the training set (the tutorial: all)"),
        "test_images": _("a random part of the test set (the tutorial: all)"),
    }
    lines = [
        "# " + _("Where this server's images are: {what}").format(what=what),
        f"DATA = {source.root!r}",
        f"CIFAR10 = {source.kind == 'cifar10'}  # " + _("True: torchvision's CIFAR-10; False: an image folder"),
        f"PATH = {path or weights_path()!r}",
    ]
    lines += [f"{name} = {getattr(s, name)!r}  # {note}" for name, note in tutorial.items()]
    return "\n".join(lines)


def notebook_setup(language: str = "en") -> tuple[str, str, list[tuple[str, str]]]:
    """(markdown, code, helpers to copy) for a notebook: CIFAR-10 in ./data if it is there, else the shapes set; the
    markdown in the notebook's language."""
    _ = locale.translations(language).gettext
    real, synthetic = (
        ", ".join(repr(getattr(s, n)) for n in ("batch_size", "learning_rate", "epochs", "train_images", "test_images"))
        for s in (REAL, SYNTHETIC)
    )
    markdown = _(
        "**Where the data is.** On the lesson page the app decides this from what the server holds. Here: CIFAR-10 "
        "in `./data` if torchvision has saved it there, else the app's synthetic *shapes* set, written as an image "
        "folder of PNG files by the functions copied from the app just below. To train on "
        "CIFAR-10 as the tutorial does, set `CIFAR10 = True`: the first step then downloads it (about 170 MB) into "
        "`./data`. For an image folder of your own, set `DATA` to it (with `train/<class>/` and `test/<class>/` "
        "inside) and `CIFAR10 = False`."
    )
    code = (
        "import os\n\n"
        'CIFAR10 = os.path.isfile(os.path.join("data", "cifar-10-batches-py", "test_batch"))\n'
        'DATA = "data" if CIFAR10 else write_shapes("shapes")\n'
        'PATH = "./cifar_net.pth"  # where the trained weights are saved, as in the tutorial\n'
        "if CIFAR10:  # the tutorial's batch size and learning rate, on part of the data, one epoch\n"
        f"    batch_size, learning_rate, epochs, train_images, test_images = {real}\n"
        "else:  # settings under which Net learns the synthetic set in seconds\n"
        f"    batch_size, learning_rate, epochs, train_images, test_images = {synthetic}\n"
        'print("CIFAR-10 in ./data" if CIFAR10 else "CIFAR-10 is not in ./data: the synthetic shapes set, in ./shapes")'
    )
    return markdown, code, [("classroom.data", "make_shapes"), ("classroom.tutorial", "write_shapes")]


# --- the run ---------------------------------------------------------------------------------------------------


@dataclass
class Run:
    """One run of the lesson's code on one source, in a background thread; what each block showed so far."""

    source: Source
    text: str  # the lesson's markdown: the blocks run are its python blocks
    seed: int = 0
    language: str = "en"  # the lesson's: the set-up's comments are written in it
    preamble: str = ""  # the set-up code, written when the run starts
    outputs: list = field(default_factory=list)  # lessons.Output of each finished block, in order
    current: tuple = (0, None)  # (number of the running block from 1, the buffer it prints into); 0: none yet
    started: float = 0.0  # time.time()
    ended: float | None = None
    setup_error: str = ""  # the data could not be prepared: nothing ran

    def __post_init__(self):
        self.lesson = lessons.parse(self.text, SLUG)
        self._done = threading.Event()

    def start(self) -> Run:
        self.started = time.time()
        threading.Thread(target=self._main, name="tutorial-run", daemon=True).start()
        return self

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def failed(self) -> bool:
        return bool(self.setup_error) or any(o.error for o in self.outputs)

    def wait(self, timeout: float | None = None) -> bool:
        """Whether the run has ended, waiting up to timeout seconds for it."""
        return self._done.wait(timeout)

    def _running(self, number: int) -> io.StringIO:
        buffer = io.StringIO()
        self.current = (number, buffer)  # one assignment: a page never pairs a block with another block's text
        return buffer

    def _main(self) -> None:
        try:
            self.preamble = preamble(self.source, language=self.language)
            execute(self.lesson, self.preamble, self.seed, self.outputs.append, self._running)
        except Exception as e:  # writing the shapes set failed (a full disk): say so on the page
            self.setup_error = f"{type(e).__name__}: {e}"
        finally:
            self.ended = time.time()
            self._done.set()


def execute(lesson: lessons.Lesson, setup: str, seed: int = 0, report=None, buffer=None) -> list[lessons.Output]:
    """The set-up, then each block, in one namespace, as lessons.run runs them (same seeds, one CPU thread).

    print() goes to block n's own buffer(n), not a process-wide capture: a half-minute training holds no lock that other
    lessons wait for. Two runs of the tutorial (the English and the Czech lesson, opened at once) take turns: they seed
    and draw from the same process-wide random generators, so side by side neither would print the seeded numbers.
    report(output) is called after each block."""
    with _execute_lock:
        return _execute(lesson, setup, seed, report, buffer)


_execute_lock = threading.Lock()


def _execute(lesson: lessons.Lesson, setup: str, seed: int, report, buffer) -> list[lessons.Output]:
    namespace: dict = {"__name__": f"lesson_{lesson.slug}"}
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    outputs = []
    with cpu_threads.using(1):
        exec(compile(setup, f"<{lesson.slug} set-up>", "exec"), namespace)
        for n, block in enumerate(lesson.code_blocks, 1):
            printed = buffer(n) if buffer else io.StringIO()
            output = lessons.run_block(block.source, namespace, f"<{lesson.slug} block {n}>", printed=printed)
            outputs.append(output)
            if report:
                report(output)
    return outputs


def student_code(run: Run) -> list[str]:
    """Every piece of code the run executed, in order: the set-up, then the blocks (the page shows exactly these)."""
    return [run.preamble] + [b.source for b in run.lesson.code_blocks]
