"""The dataset directory shared by all jobs (``--dataset DIR``, any fsspec URL)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import fsspec


class Dataset:
    """Paths and atomic writes under one dataset root.

    Layout (see docs/architecture.md): ``_input/`` the URL list cut into input shards,
    ``raw/`` download outputs, then ``scores/``, ``dedup/``, ``final/``, ``report/``.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.fs, self.root = fsspec.core.url_to_fs(url)
        self.root = self.root.rstrip("/")

    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    @staticmethod
    def shard_name(index: int) -> str:
        return f"{index:05d}"

    def makedirs(self, *parts: str) -> None:
        self.fs.makedirs(self.path(*parts), exist_ok=True)

    def exists(self, *parts: str) -> bool:
        return self.fs.exists(self.path(*parts))

    def read_json(self, *parts: str) -> Any:
        with self.fs.open(self.path(*parts), "r", encoding="utf-8") as handle:
            return json.load(handle)

    def temp_path(self, final: str) -> str:
        """A unique sibling of ``final``: each writer (and each Spark task attempt) gets its own."""
        return f"{final}.tmp.{uuid.uuid4().hex[:12]}"

    def write_json_atomic(self, data: Any, *parts: str) -> None:
        """Write JSON to a temporary name and rename it into place (readers never see half)."""
        final = self.path(*parts)
        temp = self.temp_path(final)
        with self.fs.open(temp, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
        self.fs.mv(temp, final)

    def write_parquet_atomic(self, table: Any, *parts: str) -> None:
        """Write an Arrow table as Parquet to a temporary name and rename it into place."""
        import pyarrow.parquet as pq

        final = self.path(*parts)
        temp = self.temp_path(final)
        with self.fs.open(temp, "wb") as handle:
            pq.write_table(table, handle)
        self.fs.mv(temp, final)

    def remove_temporaries(self, *parts: str) -> int:
        """Delete leftovers of interrupted writers under a folder; returns how many."""
        folder = self.path(*parts)
        if not self.fs.exists(folder):
            return 0
        stale = [p for p in self.fs.ls(folder, detail=False) if ".tmp." in p.rsplit("/", 1)[-1]]
        for path in stale:
            self.fs.rm(path, recursive=True)
        return len(stale)
