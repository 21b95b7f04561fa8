"""The trainer's ``--output`` folder on local disk or any fsspec URL.

Files written whole (checkpoints, ``model.pt``, ``summary.json``) go straight to the output,
atomically. Files that grow while training runs (``metrics.jsonl``, ``metrics.csv``, TensorBoard
event files, ``sample_keys/rank_R.txt``) need a local file to append to: on local disk that is the
output folder itself, as it always was; elsewhere it is a private local staging folder, primed
with the output's current copies of those files (a resumed run appends to them) and uploaded by
:meth:`RunOutput.sync`, each file whole and atomically, at log steps (at most every
``SYNC_SECONDS``), at every checkpoint and at the end.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path

from pipeline.remote import is_local, join, local_path, upload, write_bytes
from pipeline.storage import Storage

log = logging.getLogger(__name__)

SYNC_SECONDS = 30.0
# Folders of the output that hold files written by this module (their temporaries are cleaned).
_FOLDERS = ("", "checkpoints", "sample_keys", "tensorboard")


class RunOutput:
    """One rank's view of ``--output``: URLs of its files, and local files to append to."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.local = is_local(url)
        if self.local:
            self.staging = local_path(url)
            self.staging.mkdir(parents=True, exist_ok=True)
        else:
            self.staging = Path(tempfile.mkdtemp(prefix="corpusforge-train-"))
        self._sent: dict[str, tuple[int, int]] = {}  # staged file -> (size, mtime_ns) uploaded
        self._last_sync = time.monotonic()

    def file(self, *parts: str) -> str:
        """The path or URL of a file in the output."""
        return join(self.url, *parts)

    def remove_temporaries(self) -> None:
        """Delete what writers of an earlier, killed run left under temporary names (rank 0, at start)."""
        if self.local:
            return  # local writers leave nothing: their temporaries are renamed or overwritten
        storage = Storage(self.url)
        removed = sum(storage.remove_temporaries(*([folder] if folder else [])) for folder in _FOLDERS)
        if removed:
            log.info("removed %d temporary files of an earlier run from %s", removed, self.url)

    def appendable(self, *parts: str) -> Path:
        """A local file to append to; off local disk, first a copy of the output's current file."""
        path = self.staging.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not self.local and not path.exists():
            storage = Storage(self.url)
            if storage.exists(*parts):
                path.write_bytes(storage.read_bytes(*parts))
                self._sent[str(path)] = _state(path)
        return path

    def folder(self, *parts: str) -> Path:
        """A local folder whose files are synced to the output (TensorBoard's log dir)."""
        path = self.staging.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def sync(self, force: bool = True) -> None:
        """Upload every staged file that changed since its last upload (nothing on local disk).

        Without ``force``, at most once every ``SYNC_SECONDS``: log steps may come every second.
        """
        if self.local or (not force and time.monotonic() - self._last_sync < SYNC_SECONDS):
            return
        for path in sorted(p for p in self.staging.rglob("*") if p.is_file()):
            state = _state(path)
            if self._sent.get(str(path)) != state:
                relative = path.relative_to(self.staging).as_posix()
                upload(path, self.file(relative))
                self._sent[str(path)] = state
        self._last_sync = time.monotonic()

    def write_bytes(self, data: bytes, *parts: str) -> None:
        """Write a whole file of the output atomically."""
        write_bytes(data, self.file(*parts))

    def close(self) -> None:
        """Upload what is left (best effort: the run may be failing) and delete the staging folder."""
        if self.local:
            return
        try:
            self.sync()
        except Exception as exc:  # noqa: BLE001 - an upload error must not hide the run's own error
            log.warning("could not upload the last metrics to %s: %s", self.url, exc)
        finally:
            shutil.rmtree(self.staging, ignore_errors=True)


def _state(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns
