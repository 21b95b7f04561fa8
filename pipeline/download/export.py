"""``--output-format parquet|files``: a copy of the raw shards in img2dataset's layout.

``raw/`` stays the canonical store (score, dedup, build_shards and the report read its tars, by
byte range); the export is for tools that read img2dataset's output. Each export shard is a unit
of the shard runner fingerprinted by its raw shard's marker token, so it is written once, redone
exactly when its raw shard was (a resume, ``--retry-failed``), and its marker
(``NNNNN_stats.json``, img2dataset's counts) is written last:

- ``export/parquet/NNNNN.parquet``: one row per input row with img2dataset's columns and the
  stored image in a column named after its extension (null for failures);
- ``export/files/NNNNN/KEY.EXT``, ``KEY.txt``, ``KEY.json`` per success, and
  ``export/files/NNNNN.parquet`` (the same rows without images).

Keys are img2dataset-like numbers: the input row index, nine digits at least (``uid`` is a column
of its own, to join with scores and dedup). Statuses are img2dataset's (``success``, ``failed_to_download``,
``failed_to_resize``); ``error_class`` keeps ours.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.dataset import Dataset, RawShard
from pipeline.errors import ErrorClass
from pipeline.executor import SparkExecutor
from pipeline.runner import ShardCommit, completed, fingerprint, run_shard
from pipeline.stage import ShardStep
from schemas.raw_shard import STATUS_SUCCESS

log = logging.getLogger(__name__)

EXPORT_VERSION = 1
EXPORT_FORMATS = ("parquet", "files")  # --output-format values that write a copy
ROW_GROUP = 256  # rows per parquet row group: a few MB of images
# Failures img2dataset reports as failed_to_resize: the image arrived but could not be stored.
IMAGE_ERRORS = frozenset(
    {
        ErrorClass.UNDECODABLE,
        ErrorClass.IMAGE_TOO_LARGE,
        ErrorClass.IMAGE_TOO_SMALL,
        ErrorClass.ASPECT_RATIO,
        ErrorClass.ENCODE_ERROR,
    }
)
_RAW_COLUMNS = [
    "uid",
    "row_index",
    "url",
    "caption",
    "status",
    "error_class",
    "error_message",
    "width",
    "height",
    "original_width",
    "original_height",
    "sha256",
    "extra",
]
# img2dataset's metadata columns, in its order (after the kept columns).
_META_FIELDS = [
    pa.field("caption", pa.string()),
    pa.field("url", pa.string()),
    pa.field("key", pa.string()),
    pa.field("status", pa.string()),
    pa.field("error_message", pa.string()),
    pa.field("width", pa.int32()),
    pa.field("height", pa.int32()),
    pa.field("original_width", pa.int32()),
    pa.field("original_height", pa.int32()),
    pa.field("sha256", pa.string()),
]
_OURS = [pa.field("uid", pa.string()), pa.field("error_class", pa.string())]


def export_key(row_index: int) -> str:
    """img2dataset's kind of key: digits only, zero-padded (here: the input row index)."""
    return f"{row_index:09d}"


def img2dataset_status(row: dict[str, Any]) -> str:
    """img2dataset's status of a raw row: success, failed_to_resize or failed_to_download."""
    if row["status"] == STATUS_SUCCESS:
        return "success"
    return "failed_to_resize" if row["error_class"] in IMAGE_ERRORS else "failed_to_download"


@dataclass(frozen=True)
class ExportShardStep(ShardStep[int, None]):
    """Write raw shard ``k``'s copy in ``output_format`` unless it is there for the same raw shard."""

    dataset: str
    output_format: str
    image_ext: str

    name = "corpusforge-export"
    description = "exporting shards"
    counters = ("count",)

    def _fingerprint(self, raw: RawShard) -> str:
        return fingerprint(raw=raw.token(), format=self.output_format, version=EXPORT_VERSION)

    def completed(self, task: int) -> dict[str, Any] | None:
        dataset = Dataset(self.dataset)
        raw = dataset.raw.shard(task)
        output = dataset.export(self.output_format).shard(task).output
        return completed(dataset.storage, output, self._fingerprint(raw))

    def process(self, task: int, state: None) -> dict[str, Any]:
        dataset = Dataset(self.dataset)
        raw = dataset.raw.shard(task)
        shard = dataset.export(self.output_format).shard(task)

        def work(commit: ShardCommit) -> dict[str, Any]:
            if self.output_format == "files":
                return _write_files(dataset, raw, shard.files_folder, shard.parquet, commit, self.image_ext)
            return _write_parquet(raw, shard.parquet, commit, self.image_ext)

        return run_shard(dataset.storage, shard.output, self._fingerprint(raw), work)


def export_shards(
    executor: SparkExecutor, dataset: Dataset, output_format: str, image_ext: str, shards: list[int]
) -> dict[str, Any]:
    """Export the complete raw shards ``shards`` (one Spark task each); returns counts."""
    dataset.export(output_format).makedirs()
    dataset.export(output_format).remove_temporaries()
    stats = executor.map(ExportShardStep(dataset.url, output_format, image_ext), shards)
    return {
        "format": output_format,
        "folder": dataset.export(output_format).display(),
        "shards": len(stats),
        "written": sum(1 for s in stats if not s.get("resumed")),
        "rows": sum(int(s["count"]) for s in stats),
    }


def _raw_rows(raw: RawShard) -> list[dict[str, Any]]:
    return raw.table(_RAW_COLUMNS).to_pylist()


def _extra(row: dict[str, Any]) -> dict[str, Any]:
    return json.loads(row["extra"]) if row.get("extra") else {}


def _meta(row: dict[str, Any]) -> dict[str, Any]:
    """img2dataset's metadata of a raw row: kept columns first, then its own, then ours."""
    return {
        **_extra(row),
        "caption": row["caption"],
        "url": row["url"],
        "key": export_key(row["row_index"]),
        "status": img2dataset_status(row),
        "error_message": row["error_message"],
        "width": row["width"],
        "height": row["height"],
        "original_width": row["original_width"],
        "original_height": row["original_height"],
        "sha256": row["sha256"],
        "uid": row["uid"],
        "error_class": row["error_class"],
    }


def _schema(rows: list[dict[str, Any]], image_ext: str | None) -> pa.Schema:
    """Kept columns (types inferred from their values), img2dataset's columns, the image, ours."""
    extras = [_extra(row) for row in rows]
    kept: dict[str, None] = {}
    for extra in extras:
        kept.update(dict.fromkeys(extra))
    fields = []
    for name in kept:
        if name in {f.name for f in (*_META_FIELDS, *_OURS)} or name == image_ext:
            continue  # a kept column may not shadow img2dataset's own (img2dataset refuses it too)
        values = [extra.get(name) for extra in extras]
        try:
            kind = pa.array(values).type
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            kind = pa.string()
        fields.append(pa.field(name, pa.string() if pa.types.is_null(kind) else kind))
    image = [pa.field(image_ext, pa.binary())] if image_ext else []
    return pa.schema([*fields, *_META_FIELDS, *image, *_OURS])


def _cell(value: Any, kind: pa.DataType) -> Any:
    if value is None or not pa.types.is_string(kind) or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


class _Table:
    """Rows written to a parquet in row groups of ROW_GROUP (bounded memory with images)."""

    def __init__(self, handle: Any, schema: pa.Schema) -> None:
        self.schema = schema
        self.writer = pq.ParquetWriter(handle, schema)
        self.rows: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append({f.name: _cell(row.get(f.name), f.type) for f in self.schema})
        if len(self.rows) >= ROW_GROUP:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.writer.write_table(pa.Table.from_pylist(self.rows, schema=self.schema))
            self.rows = []

    def close(self) -> None:
        self.flush()
        self.writer.close()


def _write_parquet(
    raw: RawShard, parquet: tuple[str, str], commit: ShardCommit, image_ext: str
) -> dict[str, Any]:
    """Successes in tar order with their image, then the other rows in input order."""
    rows = _raw_rows(raw)
    by_uid = {r["uid"]: r for r in rows if r["status"] == STATUS_SUCCESS}
    with commit.open(*parquet) as handle:
        table = _Table(handle, _schema(rows, image_ext))
        try:
            for uid, data in raw.images(image_ext):
                row = by_uid.pop(uid, None)
                if row is not None:
                    table.add({**_meta(row), image_ext: data})
            _missing(raw, by_uid)
            for row in rows:
                if row["status"] != STATUS_SUCCESS:
                    table.add(_meta(row))
        finally:
            table.close()
    return _stats(raw, rows)


def _write_files(
    dataset: Dataset,
    raw: RawShard,
    folder: str,
    parquet: tuple[str, str],
    commit: ShardCommit,
    image_ext: str,
) -> dict[str, Any]:
    """``folder/KEY.EXT``, ``KEY.txt``, ``KEY.json`` per success (the folder is emptied first:
    it may hold an earlier version of the shard); the parquet of every row, in input order."""
    storage = dataset.storage
    if storage.exists(folder):
        storage.remove(folder)
    storage.makedirs(folder)
    rows = _raw_rows(raw)
    by_uid = {r["uid"]: r for r in rows if r["status"] == STATUS_SUCCESS}
    for sample in raw.tar.samples(lambda ext: ext in (image_ext, "txt")):
        row = by_uid.pop(sample.key, None)
        if row is None or image_ext not in sample.members:
            continue
        key = export_key(row["row_index"])
        meta = json.dumps(_meta(row), ensure_ascii=False, indent=4).encode("utf-8")
        # Written in place, not renamed: the marker, written last, is what says the folder is whole.
        for ext, data in (
            (image_ext, sample.members[image_ext]),
            ("txt", sample.members.get("txt", b"")),
            ("json", meta),
        ):
            with storage.open(folder, f"{key}.{ext}", mode="wb") as handle:
                handle.write(data)
    _missing(raw, by_uid)
    with commit.open(*parquet) as handle:
        table = _Table(handle, _schema(rows, None))
        try:
            for row in rows:
                table.add(_meta(row))
        finally:
            table.close()
    return _stats(raw, rows)


def _missing(raw: RawShard, left: dict[str, Any]) -> None:
    if left:
        raise ValueError(
            f"{raw.tar.path} has no image for {len(left)} successes of {raw.table_file.path} "
            f"(first: {next(iter(left))}): the raw shard is damaged; delete its _stats.json and run the "
            "download again"
        )


def _stats(raw: RawShard, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """img2dataset's ``NNNNN_stats.json`` counts (``status_dict`` by our error classes)."""
    statuses = Counter(img2dataset_status(r) for r in rows)
    classes = Counter(r["error_class"] or "success" for r in rows)
    return {
        "shard": raw.name,
        "count": len(rows),
        "successes": statuses.get("success", 0),
        "failed_to_download": statuses.get("failed_to_download", 0),
        "failed_to_resize": statuses.get("failed_to_resize", 0),
        "status_dict": dict(sorted(classes.items())),
    }
