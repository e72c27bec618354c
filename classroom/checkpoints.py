"""Save and load a trained model: weights + config + class names + metrics, loaded with weights_only=True."""

from __future__ import annotations

import io
import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import BinaryIO

import torch
import torch.nn as nn

from classroom.config import PRESETS, ConfigError, TrainConfig
from classroom.data import CIFAR10_CLASSES
from classroom.models import MODELS, build

FORMAT = "torch-classroom-checkpoint-1"
MAX_ENTRIES = 10_000  # files in the zip: one per tensor plus a few (fast-cnn has 39 tensors)
MAX_UNPACKED_MB = 512  # all entries together, as declared; the largest model here is a few MB
MAX_PICKLE_MB = 4  # data.pkl, the metadata alone (tensors have entries of their own): a 1000-class confusion matrix is 3 MB
MAX_CLASSES = 1000
MAX_CLASS_NAME = 100  # characters


class CheckpointError(RuntimeError):
    """A file that is not a checkpoint this app can use; nothing in it was executed."""


def save(path: str | os.PathLike, model: nn.Module, config: TrainConfig, classes, metrics: dict) -> Path:
    """Write atomically: a crash mid-write leaves the old file or none, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(_payload(model, config, classes, metrics), tmp)
    os.replace(tmp, path)
    return path


def to_bytes(model: nn.Module, config: TrainConfig, classes, metrics: dict) -> bytes:
    """The checkpoint as bytes, for a download button."""
    buffer = io.BytesIO()
    torch.save(_payload(model, config, classes, metrics), buffer)
    return buffer.getvalue()


def _payload(model: nn.Module, config: TrainConfig, classes, metrics: dict) -> dict:
    return {
        "format": FORMAT,
        "model": config.model,
        "config": config.to_dict(),
        "classes": list(classes),
        "metrics": metrics,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }


def load(source: str | os.PathLike | bytes, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """(model in eval mode, payload without the weights); CheckpointError for anything else."""
    name = "the uploaded file" if isinstance(source, bytes) else str(source)
    if isinstance(source, bytes):
        if not source:
            raise CheckpointError(f"{name} is empty")
        stream = io.BytesIO(source)
    else:
        if not Path(source).is_file():
            raise CheckpointError(f"{name}: no such checkpoint file")
        stream = open(source, "rb")
    with stream:
        payload = _unpickle(stream, name)
    if _is_state_dict(payload):  # the tutorial's own torch.save(net.state_dict(), PATH)
        return _load_state_dict(payload, name, device)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{name} is a PyTorch file but neither a Torch Classroom checkpoint nor a model's state_dict")
    classes = _checked_classes(payload.get("classes"), name)
    try:
        config = TrainConfig.from_dict(payload["config"])
        model = build(config.model, num_classes=len(classes))
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ConfigError, ValueError) as e:
        raise CheckpointError(f"{name} is damaged or from an incompatible version: {_first_line(e)}") from None
    except RuntimeError as e:  # load_state_dict: missing keys or wrong shapes
        raise CheckpointError(f"{name} does not fit the {payload.get('model')!r} model: {_first_line(e)}") from None
    info = {k: v for k, v in payload.items() if k != "state_dict"}
    info["config"], info["classes"] = config, classes
    return model.to(device).eval(), info


def _is_state_dict(payload) -> bool:
    """A plain state_dict: parameter names to tensors, and nothing else."""
    return isinstance(payload, dict) and bool(payload) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in payload.items()
    )


def _load_state_dict(state: dict, name: str, device) -> tuple[nn.Module, dict]:
    """A built-in model recognised from a plain state_dict's keys and shapes, with the CIFAR-10 tutorial's settings."""
    # torch.compile and DataParallel save their wrapper's prefix with every name
    state = {re.sub(r"^(_orig_mod\.|module\.)+", "", k): v for k, v in state.items()}
    for model_name in MODELS:
        model = _fitting(model_name, state)
        if model is not None:
            classes = _default_classes(_head(model).out_features)
            preset = "fast-cnn" if model_name == "fast-cnn" else "tutorial"
            config = PRESETS[preset].replace(model=model_name, data="cifar10")  # how these models are trained
            info = {"format": "state_dict", "model": model_name, "config": config, "classes": classes, "metrics": {}}
            return model.to(device).eval(), info
    raise CheckpointError(f"{name} holds a state_dict, but not of a model this app knows ({', '.join(MODELS)})")


def _fitting(model_name: str, state: dict) -> nn.Module | None:
    """The model of this name whose parameter names and shapes are exactly those of state, loaded; else None."""
    probe = build(model_name)
    if set(probe.state_dict()) != set(state):
        return None
    head = next(k for k, m in probe.named_modules() if m is _head(probe))
    classes = state[f"{head}.weight"].shape[0]
    if not 1 <= classes <= MAX_CLASSES:
        return None
    model = build(model_name, num_classes=classes)
    if any(v.shape != state[k].shape for k, v in model.state_dict().items()):
        return None
    model.load_state_dict(state)
    return model


def _head(model: nn.Module) -> nn.Linear:
    """The last Linear layer: its outputs are the classes."""
    return [m for m in model.modules() if isinstance(m, nn.Linear)][-1]


def _default_classes(count: int) -> list[str]:
    """CIFAR-10's names for a 10-class model (the tutorial's classes), else numbered classes."""
    return list(CIFAR10_CLASSES) if count == len(CIFAR10_CLASSES) else [f"class {i}" for i in range(count)]


def _unpickle(stream: BinaryIO, name: str):
    """What torch.save wrote, read by the weights-only unpickler once the zip has passed _check_archive."""
    _check_archive(stream, name)  # a zip bomb is refused having read only the zip's directory
    stream.seek(0)
    try:
        return torch.load(stream, map_location="cpu", weights_only=True)  # the unpickler admits tensors and plain data only
    except pickle.UnpicklingError as e:
        wanted = re.search(r"GLOBAL ([\w.]+)", str(e))
        if wanted:  # the file asks to import a function or class: refused, never run
            raise CheckpointError(f"{name} was refused: it asks to load code ({wanted.group(1)}), not just weights") from None
        raise CheckpointError(f"{name} is not a readable PyTorch checkpoint (not weights and plain data)") from None
    except Exception as e:  # garbage fails the weights-only unpickler in many ways (KeyError, IndexError,
        # struct.error...): none of them ran anything, and each means the same to the user
        raise CheckpointError(f"{name} is not a readable PyTorch checkpoint (truncated or not one): {_first_line(e)}") from None


def _check_archive(stream: BinaryIO, name: str) -> None:
    """CheckpointError unless stream is a zip as torch.save writes it (entries stored, not compressed) of a sane size."""
    try:
        # zipfile's own reader of the end record (private, stable since Python 2): its entry count comes before a
        # directory of millions of entries is parsed (a 200 MB upload could hold 4 million, 2 GB as ZipInfo objects)
        end = zipfile._EndRecData(stream)
        if end is None:
            raise zipfile.BadZipFile
        if end[zipfile._ECD_ENTRIES_TOTAL] > MAX_ENTRIES:
            raise CheckpointError(f"{name} was refused: {end[zipfile._ECD_ENTRIES_TOTAL]} files in it (at most {MAX_ENTRIES})")
        entries = zipfile.ZipFile(stream).infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise CheckpointError(f"{name} is not a readable PyTorch checkpoint (not torch.save's zip format)") from None
    if not any(e.filename.endswith("data.pkl") for e in entries):
        raise CheckpointError(f"{name} is not a readable PyTorch checkpoint (a zip without data.pkl)")
    if any(e.compress_type != zipfile.ZIP_STORED for e in entries):
        raise CheckpointError(f"{name} was refused: it is compressed, and torch.save never compresses a checkpoint")
    unpacked = sum(e.file_size for e in entries)
    if unpacked > MAX_UNPACKED_MB << 20:
        raise CheckpointError(f"{name} was refused: it would unpack to {unpacked >> 20} MB (at most {MAX_UNPACKED_MB} MB)")
    if any(e.file_size > MAX_PICKLE_MB << 20 for e in entries if e.filename.endswith("data.pkl")):
        raise CheckpointError(f"{name} was refused: its metadata (data.pkl) is over {MAX_PICKLE_MB} MB")


def _checked_classes(classes, name: str) -> list[str]:
    """The class names, refused when there are too many or one is not a short string (the UI shows them all)."""
    if not isinstance(classes, (list, tuple)):
        raise CheckpointError(f"{name} is damaged or from an incompatible version: its classes are not a list")
    if len(classes) > MAX_CLASSES:
        raise CheckpointError(f"{name} was refused: {len(classes)} classes ({_first_few(classes)}); at most {MAX_CLASSES}")
    odd = [c for c in classes if not isinstance(c, str) or len(c) > MAX_CLASS_NAME]
    if odd:
        raise CheckpointError(
            f"{name} was refused: class names must be text of at most {MAX_CLASS_NAME} characters, not {_first_few(odd)}"
        )
    return list(classes)


def _first_few(items, shown: int = 3, width: int = 20) -> str:
    """A few items, each cut short, for a message that must stay one short line."""
    few = [
        repr(x[:width]) + ("…" if len(x) > width else "") if isinstance(x, str) else f"a {type(x).__name__}"
        for x in items[:shown]
    ]
    return ", ".join(few) + (", …" if len(items) > shown else "")


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__
