"""Save and load a trained model: weights + config + class names + metrics, loaded with weights_only=True."""

from __future__ import annotations

import io
import os
import pickle
import re
from pathlib import Path

import torch
import torch.nn as nn

from classroom.config import ConfigError, TrainConfig
from classroom.models import build

FORMAT = "torch-classroom-checkpoint-1"


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
        stream = source
    try:
        payload = torch.load(stream, map_location="cpu", weights_only=True)  # the unpickler admits tensors and plain data only
    except pickle.UnpicklingError as e:
        wanted = re.search(r"GLOBAL ([\w.]+)", str(e))
        if wanted:  # the file asks to import a function or class: refused, never run
            raise CheckpointError(f"{name} was refused: it asks to load code ({wanted.group(1)}), not just weights") from None
        raise CheckpointError(f"{name} is not a readable PyTorch checkpoint (not weights and plain data)") from None
    except Exception as e:  # garbage fails the weights-only unpickler in many ways (KeyError, IndexError,
        # struct.error...): none of them ran anything, and each means the same to the user
        raise CheckpointError(f"{name} is not a readable PyTorch checkpoint (truncated or not one): {_first_line(e)}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{name} is a PyTorch file but not a Torch Classroom checkpoint")
    try:
        config = TrainConfig.from_dict(payload["config"])
        classes = [str(c) for c in payload["classes"]]
        model = build(config.model, num_classes=len(classes))
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ConfigError, ValueError) as e:
        raise CheckpointError(f"{name} is damaged or from an incompatible version: {_first_line(e)}") from None
    except RuntimeError as e:  # load_state_dict: missing keys or wrong shapes
        raise CheckpointError(f"{name} does not fit the {payload.get('model')!r} model: {_first_line(e)}") from None
    info = {k: v for k, v in payload.items() if k != "state_dict"}
    info["config"], info["classes"] = config, classes
    return model.to(device).eval(), info


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__
