"""Writing one raw shard (``raw/NNNNN.tar`` and ``.parquet``) through the shard runner's commit.

The tar is streamed to its temporary name as rows finish; the parquet (one row per input row,
success or not, in input order) is written at the end. The runner renames both into place and
writes ``NNNNN_stats.json`` last: the only proof that the shard is complete.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa

from pipeline.dataset import RawShard
from pipeline.runner import ShardCommit
from pipeline.shards.tar_writer import TarWriter
from schemas.raw_shard import RAW_SHARD_SCHEMA, STATUS_FAILED, STATUS_SUCCESS

FAILED_HOSTS_KEPT = 20  # hosts with the most failed rows, per shard marker


@dataclass(frozen=True)
class SampleRecord:
    """Outcome of one input row: a parquet row, plus image bytes when it succeeded."""

    row: dict[str, Any]  # RAW_SHARD_SCHEMA fields
    image: bytes | None = None


class RawShardWriter:
    """Collects one shard's records; :meth:`finish` writes the parquet and returns the stats."""

    def __init__(self, commit: ShardCommit, shard: RawShard, image_ext: str) -> None:
        self.commit = commit
        self.shard = shard
        self.image_ext = image_ext
        self._handle = commit.open(*shard.tar.parts)
        self._tar = TarWriter(self._handle)
        self._rows: list[dict[str, Any]] = []

    def add(self, record: SampleRecord) -> None:
        """Record one row; a success also goes into the tar as KEY.EXT, KEY.txt and KEY.json."""
        row = record.row
        if row["status"] == STATUS_SUCCESS:
            if record.image is None:
                raise ValueError(f"success without image bytes for {row['uid']}")
            self._tar.write(row["uid"], sample_members(row, record.image, self.image_ext))
        self._rows.append(row)

    def copy(self, row: dict[str, Any], members: dict[str, bytes]) -> None:
        """Record a success with the tar members it already has (a shard being rewritten)."""
        self._tar.write(row["uid"], members)
        self._rows.append(row)

    def finish(self) -> dict[str, Any]:
        """Close the tar, write the parquet; return the stats for the shard's marker."""
        self.close()
        rows = sorted(self._rows, key=lambda r: r["row_index"])
        self.commit.write_parquet(
            pa.Table.from_pylist(rows, schema=RAW_SHARD_SCHEMA), *self.shard.table_file.parts
        )
        return {
            **shard_stats(rows),
            "shard": self.shard.name,
            "schema_version": RAW_SHARD_SCHEMA.metadata[b"corpusforge.schema_version"].decode(),
        }

    def close(self) -> None:
        """End and close the tar (idempotent; the runner deletes it if the shard is not committed)."""
        self._tar.close()
        self._handle.close()


def sample_members(row: dict[str, Any], image: bytes, image_ext: str) -> dict[str, bytes]:
    """The tar members of a success: ``KEY.EXT`` (the image), ``KEY.txt``, ``KEY.json``."""
    meta = {k: v for k, v in row.items() if k not in ("extra", "error_class", "error_message")}
    if row.get("extra"):
        meta.update(json.loads(row["extra"]))
    return {
        image_ext: image,
        "txt": (row["caption"] or "").encode("utf-8"),
        "json": json.dumps(meta, ensure_ascii=False, sort_keys=True).encode("utf-8"),
    }


def raw_row(**fields: Any) -> dict[str, Any]:
    """A raw parquet row: every column of the contract, None unless given, status ``failed``
    until an outcome sets it."""
    unknown = set(fields) - set(RAW_SHARD_SCHEMA.names)
    if unknown:
        raise KeyError(f"not columns of the raw shard schema: {sorted(unknown)}")
    return {name: None for name in RAW_SHARD_SCHEMA.names} | {"status": STATUS_FAILED} | fields


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
        "failed_hosts": failed_hosts(rows),
    }


def failed_hosts(rows: list[dict[str, Any]], top: int = FAILED_HOSTS_KEPT) -> dict[str, int]:
    """Failed rows per URL host (``host[:port]``), the ``top`` most frequent (for the error-rate
    warning: one host behind most failures)."""
    hosts = Counter(urlsplit(r["url"]).netloc for r in rows if r["status"] == STATUS_FAILED and r["url"])
    return dict(hosts.most_common(top))
