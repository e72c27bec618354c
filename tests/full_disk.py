"""A full disk under one folder, failing each writer the way it really fails there."""

from __future__ import annotations

import builtins
import errno
import io
import os
from pathlib import Path

import torch

# What torch.save's zip writer raises when a write fails: a RuntimeError, with no errno to say why.
ZIP_WRITER_ERROR = "[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file data/0: file write failed"


class _FullFile:
    """An open file on a full disk: it exists (the kernel made it), but no byte can be written to it."""

    def __init__(self, file):
        self._file = file

    def write(self, _data):
        raise OSError(errno.ENOSPC, "No space left on device")

    def close(self):
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def fill(monkeypatch, root: Path) -> None:
    """From now on every write under root fails: open() for writing gives files that refuse bytes with ENOSPC
    (leaving them empty), and torch.save to a path leaves a partial file and raises the zip writer's RuntimeError."""
    root = Path(root).resolve()
    real_open, real_save = builtins.open, torch.save

    def under_root(file) -> bool:
        return isinstance(file, str | os.PathLike) and Path(file).resolve().is_relative_to(root)

    def full_open(file, mode="r", *args, **kwargs):
        opened = real_open(file, mode, *args, **kwargs)
        return _FullFile(opened) if under_root(file) and any(c in mode for c in "wax+") else opened

    def full_save(obj, f, *args, **kwargs):
        if under_root(f):
            with real_open(f, "wb") as partial:
                partial.write(b"PK\x03\x04")  # the zip writer's first bytes made it; the rest did not
            raise RuntimeError(ZIP_WRITER_ERROR)
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", full_open)
    monkeypatch.setattr(io, "open", full_open)  # what pathlib's write_text and write_bytes call
    monkeypatch.setattr(torch, "save", full_save)
