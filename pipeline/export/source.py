"""The model to export: which open_clip model a checkpoint holds, loaded as the score job loads it.

A ``corpusforge train`` checkpoint (``checkpoints/step_*.pt``) names its model; ``model.pt`` and
other open_clip checkpoints (plain state dicts) do not, and need ``--model``.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from pipeline.errors import UserInputError
from pipeline.score.model import LoadedModel, load_model, weights_file
from pipeline.train.checkpoint import FORMAT as TRAIN_FORMAT

log = logging.getLogger(__name__)


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a local file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_model_name(path: str | Path) -> str | None:
    """The model a train checkpoint names, None for a plain state dict; clear errors for other files."""
    import torch

    try:
        checkpoint: Any = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # noqa: BLE001 - a damaged file fails inside the unpickler in many ways
        raise UserInputError(
            f"--checkpoint {path}: not a readable PyTorch checkpoint ({type(exc).__name__}: "
            f"{str(exc).strip()[:200]})"
        ) from exc
    if not isinstance(checkpoint, dict):
        raise UserInputError(f"--checkpoint {path}: holds a {type(checkpoint).__name__}, not a state dict")
    if checkpoint.get("format") == TRAIN_FORMAT:
        return str(checkpoint["name"])
    return None


def load_source(checkpoint: str, model: str) -> tuple[LoadedModel, str, str]:
    """The model in eval mode on the CPU, the local file it came from, and that file's SHA-256."""
    local = weights_file(checkpoint) if checkpoint else ""
    if not local or not Path(local).is_file():
        raise UserInputError(f"--checkpoint {checkpoint}: no such checkpoint file")
    named = checkpoint_model_name(local)
    if named and model and named != model:
        raise UserInputError(f"--checkpoint {checkpoint} holds {named}, but --model {model} was given")
    name = named or model
    if not name:
        raise UserInputError(
            f"--checkpoint {checkpoint} does not name its model (not a corpusforge train checkpoint); "
            "give --model, e.g. --model corpusforge-tiny"
        )
    loaded = load_model(name, local, device="cpu")
    return loaded, local, sha256_file(local)
