"""Raw shard output with the commit protocol of the design.

``raw/NNNNN.tar`` and ``raw/NNNNN.parquet`` are written under temporary names, renamed into
place, and ``raw/NNNNN_stats.json`` is written last: it is the only proof that a shard is
complete. A shard without its stats file is redone from scratch by the next run.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.dataset import Dataset
from pipeline.shards.tar_writer import TarWriter
from schemas.raw_shard import RAW_SHARD_SCHEMA, STATUS_SUCCESS

RAW_DIR = "raw"


@dataclass(frozen=True)
class SampleRecord:
    """Outcome of one input row: a parquet row, plus image bytes when it succeeded."""

    row: dict[str, Any]  # RAW_SHARD_SCHEMA fields
    image: bytes | None = None


def stats_name(dataset: Dataset, shard: int) -> str:
    return f"{dataset.shard_name(shard)}_stats.json"


def is_complete(dataset: Dataset, shard: int) -> bool:
    """True when the shard's stats marker exists (and so its tar and parquet do)."""
    return dataset.exists(RAW_DIR, stats_name(dataset, shard))


def complete_shards(dataset: Dataset) -> list[int]:
    """Indices of the complete raw shards (those with a stats marker), in order."""
    if not dataset.exists(RAW_DIR):
        return []
    names = [p.rsplit("/", 1)[-1] for p in dataset.fs.ls(dataset.path(RAW_DIR), detail=False)]
    return sorted(int(n.split("_")[0]) for n in names if n.endswith("_stats.json") and n[:5].isdigit())


def read_stats(dataset: Dataset, shard: int) -> dict[str, Any]:
    """The stats of a complete shard."""
    return dataset.read_json(RAW_DIR, stats_name(dataset, shard))


class RawShardWriter:
    """Collects one shard's records and commits them atomically."""

    def __init__(self, dataset: Dataset, shard: int, image_ext: str) -> None:
        self.dataset = dataset
        self.shard = shard
        self.image_ext = image_ext
        name = dataset.shard_name(shard)
        self.tar_path = dataset.path(RAW_DIR, f"{name}.tar")
        self.parquet_path = dataset.path(RAW_DIR, f"{name}.parquet")
        self._tar_temp = dataset.temp_path(self.tar_path)
        dataset.makedirs(RAW_DIR)
        self._handle = dataset.fs.open(self._tar_temp, "wb")
        self._tar = TarWriter(self._handle)
        self._rows: list[dict[str, Any]] = []
        self._started = time.time()

    def add(self, record: SampleRecord) -> None:
        """Record one row; a success also goes into the tar as KEY.EXT, KEY.txt and KEY.json."""
        row = record.row
        if row["status"] == STATUS_SUCCESS:
            if record.image is None:
                raise ValueError(f"success without image bytes for {row['uid']}")
            meta = {k: v for k, v in row.items() if k not in ("extra", "error_class", "error_message")}
            if row.get("extra"):
                meta.update(json.loads(row["extra"]))
            self._tar.write(
                row["uid"],
                {
                    self.image_ext: record.image,
                    "txt": (row["caption"] or "").encode("utf-8"),
                    "json": json.dumps(meta, ensure_ascii=False, sort_keys=True).encode("utf-8"),
                },
            )
        self._rows.append(row)

    def commit(self, extra_stats: dict[str, Any] | None = None) -> dict[str, Any]:
        """Close, rename into place, then write the stats marker. Returns the stats."""
        self._tar.close()
        self._handle.close()
        rows = sorted(self._rows, key=lambda r: r["row_index"])
        table = pa.Table.from_pylist(rows, schema=RAW_SHARD_SCHEMA)
        parquet_temp = self.dataset.temp_path(self.parquet_path)
        with self.dataset.fs.open(parquet_temp, "wb") as handle:
            pq.write_table(table, handle)
        self.dataset.fs.mv(self._tar_temp, self.tar_path)
        self.dataset.fs.mv(parquet_temp, self.parquet_path)
        stats = shard_stats(rows)
        stats.update(
            shard=self.dataset.shard_name(self.shard),
            seconds=round(time.time() - self._started, 3),
            schema_version=RAW_SHARD_SCHEMA.metadata[b"corpusforge.schema_version"].decode(),
            **(extra_stats or {}),
        )
        self.dataset.write_json_atomic(stats, RAW_DIR, stats_name(self.dataset, self.shard))
        return stats

    def abort(self) -> None:
        """Drop the partial output (the shard stays incomplete and is redone next run)."""
        try:
            self._tar.close()
            self._handle.close()
        except OSError:
            pass  # the output is discarded anyway
        finally:
            if self.dataset.fs.exists(self._tar_temp):
                self.dataset.fs.rm(self._tar_temp)


def shard_stats(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts per status and failure class, and byte totals, for a shard's rows."""
    statuses = Counter(r["status"] for r in rows)
    errors = Counter(r["error_class"] for r in rows if r["error_class"])
    return {
        "rows": len(rows),
        "status": dict(sorted(statuses.items())),
        "errors": dict(sorted(errors.items())),
        "successes": statuses.get(STATUS_SUCCESS, 0),
        "original_bytes": sum(r["original_bytes"] or 0 for r in rows if r["status"] == STATUS_SUCCESS),
        "stored_bytes": sum(r["stored_bytes"] or 0 for r in rows),
    }
