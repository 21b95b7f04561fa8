"""Training checkpoints: written atomically, loaded with ``weights_only=True``, found for resume.

A checkpoint ``OUT/checkpoints/step_NNNNNNNN.pt`` is a dict of tensors and plain values:
``format``, ``name`` (model config), ``step``, ``state_dict`` (the bare model's weights, as
open_clip's ``load_checkpoint`` expects, so ``--pretrained`` accepts the file), ``optimizer``,
``scaler`` (or None), ``data`` (the data stream position of every rank), ``rng`` and ``options``.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
from pathlib import Path
from typing import Any

from pipeline.errors import UserInputError

log = logging.getLogger(__name__)

FORMAT = "corpusforge-train/1"
_NAME = re.compile(r"^step_(\d+)\.pt$")


def checkpoint_path(folder: str | Path, step: int) -> Path:
    """Where the checkpoint of ``step`` goes."""
    return Path(folder) / f"step_{step:08d}.pt"


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temporary name in the same folder, fsync, then rename into place."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(temp, "wb") as handle:
        torch.save(obj, handle)
        handle.flush()
        os.fsync(handle.fileno())
    temp.replace(path)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a training checkpoint on the CPU with ``weights_only=True``; clear errors otherwise."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"--resume {path}: no such checkpoint file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise UserInputError(
            f"{path}: refused, the checkpoint holds pickled objects or code that weights_only loading "
            f"does not allow ({first[:200]}); only load checkpoints you trust, and re-save them as "
            "plain tensors"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - a damaged file fails inside the unpickler in many ways
        reason = f"{type(exc).__name__}: {exc}"
        raise UserInputError(f"{path}: not a readable PyTorch checkpoint ({reason})") from exc
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise UserInputError(
            f"{path}: not a corpusforge training checkpoint (no format {FORMAT!r}); to start from plain "
            "weights use --pretrained"
        )
    return checkpoint


def latest_checkpoint(folder: str | Path) -> Path | None:
    """The complete checkpoint with the highest step in ``folder`` (temporary files are ignored)."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    steps = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return max(steps)[1] if steps else None


def resolve_resume(resume: str, folder: str | Path) -> Path | None:
    """``""``: start fresh; ``latest``: newest checkpoint in ``folder`` if any; else a path."""
    if not resume:
        return None
    if resume == "latest":
        path = latest_checkpoint(folder)
        if path is None:
            log.info("--resume latest: no checkpoint in %s yet, starting from scratch", folder)
        return path
    return Path(resume)


def prune_checkpoints(folder: str | Path, keep: int) -> None:
    """Delete all but the ``keep`` newest checkpoints (``keep`` <= 0 keeps all)."""
    if keep <= 0:
        return
    folder = Path(folder)
    steps = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name)))
    for _, path in steps[:-keep]:
        path.unlink(missing_ok=True)
