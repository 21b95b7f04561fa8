"""One img2dataset shard in, one raw shard out (``raw/NNNNN`` with img2dataset's shard number).

Every row of img2dataset's ``NNNNN.parquet`` becomes a raw parquet row: its uid (from the
normalised URL and caption, as the download computes it), ``row_index`` = img2dataset's key, the
status and a failure class mapped from img2dataset's message, sizes, and sha256 and pHash. A
success keeps img2dataset's stored image bytes as they are (no re-encoding); its pHash is
computed from them, and its sha256 is img2dataset's own (of the downloaded bytes, as ours) when
the run computed one, else that of the stored bytes. Columns img2dataset saved from the input
(``--save_additional_columns``) and its key go to ``extra`` (``KEY.json``); ``exif`` does not.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow.parquet as pq

from pipeline.dataset import Dataset
from pipeline.errors import ErrorClass, SampleError, UserInputError
from pipeline.image.decode import decode_rgb, open_checked
from pipeline.image.options import ImageOptions, ResizeMode
from pipeline.image.phash import phash, to_signed64
from pipeline.imports.source import FILES, IMAGE_COLUMNS, PARQUET, WEBDATASET, SourceShard
from pipeline.imports.statuses import classify
from pipeline.runner import ShardCommit, completed, fingerprint, run_shard
from pipeline.shards.raw_writer import RawShardWriter, SampleRecord, raw_row
from pipeline.shards.tar_reader import TarStream
from pipeline.stage import ShardStep
from pipeline.storage import Storage
from pipeline.uid import make_uid, normalise_url
from schemas.raw_shard import STATUS_FAILED, STATUS_SKIPPED, STATUS_SUCCESS

IMPORT_VERSION = 1
BATCH = 256  # rows of a parquet read at a time (with their images)
# img2dataset's own columns; every other column of its parquet came from the input list.
_OWN_COLUMNS = frozenset(
    {
        "key",
        "url",
        "caption",
        "status",
        "error_message",
        "width",
        "height",
        "original_width",
        "original_height",
        "exif",
        "md5",
        "sha256",
        "sha512",
        "txt",
        *IMAGE_COLUMNS,
        # corpusforge's own export (--output-format) adds these two
        "uid",
        "error_class",
    }
)
_CLASSES = frozenset(c.value for c in ErrorClass)
# Stored images are decoded as they are: no filter applies, nothing is resized.
_AS_STORED = ImageOptions(resize_mode=ResizeMode.NO, max_pixels=sys.maxsize, reduced_decode=False)


@dataclass(frozen=True)
class ImportTask:
    """One source shard and the keys of its successes that repeat an earlier uid."""

    shard: SourceShard
    duplicates: tuple[int, ...] = ()


@dataclass(frozen=True)
class ImportShard(ShardStep[ImportTask, None]):
    """Write raw shard ``task.shard.index`` from img2dataset's shard unless already imported from
    the same files (``inputs``: the fingerprint of everything else every shard depends on)."""

    source: str
    dataset: str
    image_ext: str
    inputs: str

    name = "corpusforge-import"
    description = "importing shards"
    counters = ("rows", "successes")

    def _fingerprint(self, task: ImportTask) -> str:
        return fingerprint(
            inputs=self.inputs, index=task.shard.index, files=task.shard.versions, duplicates=task.duplicates
        )

    def completed(self, task: ImportTask) -> dict[str, Any] | None:
        dataset = Dataset(self.dataset)
        return completed(dataset.storage, dataset.raw.shard(task.shard.index).output, self._fingerprint(task))

    def process(self, task: ImportTask, state: None) -> dict[str, Any]:
        dataset = Dataset(self.dataset)
        raw = dataset.raw.shard(task.shard.index)

        def work(commit: ShardCommit) -> dict[str, Any]:
            writer = RawShardWriter(commit, raw, self.image_ext)
            try:
                counts = _import(Storage(self.source), task, writer, self.image_ext)
            finally:
                writer.close()
            return {**writer.finish(), **counts}

        return run_shard(dataset.storage, raw.output, self._fingerprint(task), work)


def success_uids(source: str, shard: SourceShard) -> Iterator[tuple[str, int]]:
    """``(uid, row_index)`` of the shard's successes (the input of the duplicate search)."""
    rows = _metadata(Storage(source), shard, ["key", "url", "caption", "status"])
    for row in rows:
        if row["status"] == "success":
            yield _uid(row), _row_index(row, shard)


def _import(storage: Storage, task: ImportTask, writer: RawShardWriter, image_ext: str) -> dict[str, Any]:
    shard = task.shard
    rows = _metadata(storage, shard, None)
    by_key = {row["key"]: row for row in rows}
    duplicates = set(task.duplicates)
    sha_from: Counter[str] = Counter()
    done: set[str] = set()
    for key, data, text in _stored_images(storage, shard, by_key, image_ext):
        row = by_key.get(key)
        if row is None or row["status"] != "success" or key in done:
            continue  # an image img2dataset's parquet does not list as a success
        done.add(key)
        writer.add(_success(row, shard, data, text, duplicates, sha_from))
    for row in rows:
        if row["key"] not in done:
            writer.add(_not_stored(row, shard, image_ext))
    return {
        "source_shard": shard.name,
        "source_layout": shard.layout,
        "img2dataset_successes": sum(1 for r in rows if r["status"] == "success"),
        "sha256_from": dict(sorted(sha_from.items())),
    }


def _metadata(storage: Storage, shard: SourceShard, columns: list[str] | None) -> list[dict[str, Any]]:
    """img2dataset's rows (without the image column): every input row of the shard."""
    with storage.open(shard.parquet) as handle:
        parquet = pq.ParquetFile(handle)
        names = parquet.schema_arrow.names
        wanted = [n for n in (columns or names) if n in names and n not in IMAGE_COLUMNS]
        rows = parquet.read(columns=wanted).to_pylist()
    for row in rows:
        row.setdefault("caption", None)
    return rows


def _stored_images(
    storage: Storage, shard: SourceShard, by_key: dict[str, dict[str, Any]], image_ext: str
) -> Iterator[tuple[str, bytes, str | None]]:
    """``(key, image bytes, caption text or None)`` of the stored images, in storage order."""
    if shard.layout == WEBDATASET:
        with storage.open(shard.tar) as handle:
            stream = TarStream(handle, storage.display(shard.tar))
            for sample in stream.samples(lambda ext: ext in (image_ext, "txt")):
                if image_ext in sample.members:
                    text = sample.members.get("txt")
                    yield sample.key, sample.members[image_ext], None if text is None else text.decode()
    elif shard.layout == FILES:
        for key, row in by_key.items():
            if row["status"] != "success":
                continue
            try:
                data = storage.read_bytes(shard.name, f"{key}.{image_ext}")
            except FileNotFoundError:
                continue  # reported as a success without an image
            yield key, data, None
    elif shard.layout == PARQUET:
        with storage.open(shard.parquet) as handle:
            parquet = pq.ParquetFile(handle)
            for batch in parquet.iter_batches(batch_size=BATCH, columns=["key", image_ext]):
                for key, data in zip(*(batch.column(c).to_pylist() for c in ("key", image_ext)), strict=True):
                    if data is not None:
                        yield key, data, None
    else:
        raise ValueError(f"unknown img2dataset layout {shard.layout!r}")


def _row_index(row: dict[str, Any], shard: SourceShard) -> int:
    key = str(row["key"])
    if not key.isdigit():
        raise UserInputError(f"{shard.parquet}: key {key!r} is not img2dataset's (digits only)")
    return int(key)


def _caption(row: dict[str, Any], text: str | None = None) -> str | None:
    caption = row["caption"] if row["caption"] is not None else text
    return caption.strip() if isinstance(caption, str) else caption


def _url(row: dict[str, Any]) -> str | None:
    """The URL as the download normalises it; as img2dataset kept it if we would refuse it."""
    url = row["url"]
    if not url:
        return url
    try:
        return normalise_url(url)
    except SampleError:
        return url


def _uid(row: dict[str, Any], text: str | None = None) -> str:
    return make_uid(_url(row) or f"img2dataset#{row['key']}", _caption(row, text))


def _base(row: dict[str, Any], shard: SourceShard, text: str | None = None) -> dict[str, Any]:
    kept = {k: v for k, v in row.items() if k not in _OWN_COLUMNS}
    extra = json.dumps({"img2dataset_key": row["key"], **kept}, ensure_ascii=False, default=str)
    return raw_row(
        uid=_uid(row, text),
        row_index=_row_index(row, shard),
        url=_url(row),
        caption=_caption(row, text),
        extra=extra,
        original_width=row.get("original_width"),
        original_height=row.get("original_height"),
    )


def _success(
    row: dict[str, Any],
    shard: SourceShard,
    data: bytes,
    text: str | None,
    duplicates: set[int],
    sha_from: Counter[str],
) -> SampleRecord:
    out = _base(row, shard, text)
    if out["row_index"] in duplicates:
        return SampleRecord(
            {
                **out,
                "status": STATUS_SKIPPED,
                "error_class": ErrorClass.DUPLICATE_PAIR.value,
                "error_message": f"{row['url']}: an earlier img2dataset row has the same URL and caption",
            }
        )
    try:
        stored, _ = decode_rgb(open_checked(data, _AS_STORED), _AS_STORED)
    except SampleError as exc:
        return SampleRecord(
            {
                **out,
                "status": STATUS_FAILED,
                "error_class": exc.error_class.value,
                "error_message": f"{row['url']}: img2dataset's stored image: {exc.message}",
            }
        )
    given = row.get("sha256")
    sha_from["img2dataset" if given else "stored_bytes"] += 1
    out.update(
        status=STATUS_SUCCESS,
        width=stored.width,
        height=stored.height,
        stored_bytes=len(data),
        sha256=given or hashlib.sha256(data).hexdigest(),
        phash=to_signed64(phash(stored)),
    )
    return SampleRecord(out, data)


def _not_stored(row: dict[str, Any], shard: SourceShard, image_ext: str) -> SampleRecord:
    """A failure as img2dataset recorded it, or a success whose image is missing."""
    out = _base(row, shard)
    if row["status"] == "success":
        where = {WEBDATASET: shard.tar, FILES: f"{shard.name}/", PARQUET: shard.parquet}[shard.layout]
        error_class, http_status = ErrorClass.IMPORTED_ERROR, None
        message = (
            f"img2dataset recorded a success but {where} holds no {image_ext} image for key {row['key']}"
        )
    else:
        error_class, http_status = classify(row["status"], row.get("error_message"), row["url"])
        if row.get("error_class") in _CLASSES:  # exported by corpusforge: its own class
            error_class = ErrorClass(row["error_class"])
        message = f"img2dataset {row['status']}: {row.get('error_message') or 'no message'}"
    out.update(
        status=STATUS_FAILED,
        error_class=error_class.value,
        error_message=f"{row['url']}: {message}",
        http_status=http_status,
    )
    return SampleRecord(out)
