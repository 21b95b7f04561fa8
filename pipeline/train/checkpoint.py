"""Training checkpoints: written atomically, loaded with ``weights_only=True``, found for resume.

A checkpoint ``OUT/checkpoints/step_NNNNNNNN.pt`` is a dict of tensors and plain values:
``format``, ``name`` (model config), ``step``, ``state_dict`` (the bare model's weights, as
open_clip's ``load_checkpoint`` expects, so ``--pretrained`` accepts the file), ``optimizer``,
``scaler`` (or None), ``data`` (the data stream position of every rank), ``rng`` and ``options``.

``OUT`` is a local folder or any fsspec URL. A checkpoint is written under a hidden temporary
name and renamed into place, so a final name always holds a whole file (locally: fsync, then an
atomic rename). On other file systems a rename may be a copy (S3, Azure), so after the rename
the pointer ``checkpoints/latest.json`` (``{"file": ..., "step": ...}``) is written last, and
``--resume latest`` never takes a checkpoint newer than the one it names: a run killed anywhere
while saving resumes from the previous complete checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
from pathlib import Path
from typing import Any

from pipeline.errors import UserInputError
from pipeline.remote import exists, is_local, join, local_path, split, url_to_fs, write_bytes
from pipeline.storage import Storage

log = logging.getLogger(__name__)

FORMAT = "corpusforge-train/1"
LATEST = "latest.json"
_NAME = re.compile(r"^step_(\d+)\.pt$")


def checkpoint_path(folder: str | Path, step: int) -> str:
    """Where the checkpoint of ``step`` goes (a path or URL, as ``folder`` is)."""
    return join(folder, f"step_{step:08d}.pt")


def atomic_save(obj: Any, path: str | Path) -> str:
    """``torch.save`` to a temporary name in the same folder, then rename into place.

    Locally the file is fsynced before the rename; on other file systems it is streamed to a
    hidden temporary object (:meth:`pipeline.storage.Storage.atomic`).
    """
    import torch

    if not is_local(path):
        folder, name = split(str(path))
        with Storage(folder).atomic(name) as handle:
            torch.save(obj, handle)
        return str(path)
    final = local_path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    with open(temp, "wb") as handle:
        torch.save(obj, handle)
        handle.flush()
        os.fsync(handle.fileno())
    temp.replace(final)
    return str(path)


def save_checkpoint(state: dict[str, Any], folder: str | Path) -> str:
    """Write the checkpoint of ``state["step"]`` into ``folder``; off local disk, the pointer last."""
    step = int(state["step"])
    path = atomic_save(state, checkpoint_path(folder, step))
    if not is_local(folder):
        pointer = {"file": split(path)[1], "step": step}
        write_bytes(json.dumps(pointer, indent=2, sort_keys=True).encode("utf-8"), join(folder, LATEST))
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a training checkpoint on the CPU with ``weights_only=True``; clear errors otherwise."""
    import torch

    if not exists(str(path), "--resume"):
        raise UserInputError(f"--resume {path}: no such checkpoint file")
    try:
        if is_local(path):
            checkpoint = torch.load(local_path(path), map_location="cpu", weights_only=True)
        else:
            fs, remote = url_to_fs(str(path), "--resume")
            with fs.open(remote, "rb") as handle:
                checkpoint = torch.load(handle, map_location="cpu", weights_only=True)
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


def _steps(storage: Storage) -> list[tuple[int, str]]:
    """(step, file name) of every checkpoint name in the folder, oldest first."""
    return sorted((int(m.group(1)), name) for name in storage.names() if (m := _NAME.match(name)))


def latest_checkpoint(folder: str | Path) -> str | None:
    """The complete checkpoint with the highest step in ``folder`` (temporary files are ignored).

    When ``latest.json`` is there, checkpoints newer than the one it names are ignored: they were
    renamed into place by a run that died before it could vouch for them.
    """
    storage = Storage(str(folder))
    steps = _steps(storage)
    if storage.exists(LATEST):
        try:
            newest = int(storage.read_json(LATEST)["step"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable %s: %s", storage.display(LATEST), exc)
        else:
            ignored = [name for step, name in steps if step > newest]
            if ignored:
                log.warning("ignoring %s: newer than %s names", ", ".join(ignored), storage.display(LATEST))
            steps = [(step, name) for step, name in steps if step <= newest]
    return join(folder, steps[-1][1]) if steps else None


def resolve_resume(resume: str, folder: str | Path) -> str | None:
    """``""``: start fresh; ``latest``: newest checkpoint in ``folder`` if any; else a path or URL."""
    if not resume:
        return None
    if resume == "latest":
        path = latest_checkpoint(folder)
        if path is None:
            log.info("--resume latest: no checkpoint in %s yet, starting from scratch", folder)
        return path
    return resume


def prune_checkpoints(folder: str | Path, keep: int) -> None:
    """Delete all but the ``keep`` newest checkpoints (``keep`` <= 0 keeps all)."""
    if keep <= 0:
        return
    storage = Storage(str(folder))
    for _, name in _steps(storage)[:-keep]:
        storage.remove(name)
