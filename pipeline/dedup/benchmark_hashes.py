"""Hashing benchmark images the way corpus images were hashed, and reusing the result.

A benchmark image goes through :func:`pipeline.image.process.stored_image` with the download
job's own image options (``raw/_options.json``): the same decode, resize and border as the
corpus, then the same pHash. The table is committed by the shard runner as
``dedup/benchmark_hashes.parquet`` with the fingerprint of its sources and options in its marker
``_benchmark_sources.json``; a later run with unchanged sources and options reuses it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from pipeline.dataset import Dataset
from pipeline.dedup.benchmark_sources import (
    FOLDER,
    HASHES,
    BenchmarkSource,
    iter_tar_images,
    read_file,
)
from pipeline.dedup.features import image_features
from pipeline.dedup.verify import THUMBNAIL_BYTES, ZOOMS, picture_box, zoomed_thumbnails
from pipeline.errors import SampleError, UserInputError
from pipeline.executor import SparkExecutor
from pipeline.image.options import ImageOptions, image_record
from pipeline.image.phash import phash, to_signed64
from pipeline.image.process import stored_image
from pipeline.runner import ShardCommit, fingerprint, run_shard
from pipeline.stage import ShardStep
from schemas.contract import SchemaMismatch
from schemas.dedup import BENCHMARK_HASHES_SCHEMA

log = logging.getLogger(__name__)

FILES_PER_TASK = 200
MAX_ERRORS_SHOWN = 10
# Bump when the hashing of benchmark images changes, so saved tables are not reused.
# 3: the verification thumbnail and its central crops; 4: crops to 25%, the thumbnail inside bars.
HASHING_VERSION = 4


def hash_image(data: bytes, image: ImageOptions) -> dict[str, Any]:
    """pHash (plain, mirrored, of the centre), complexity, colour signature and verification
    thumbnail of one benchmark image file, from the picture the download job would store."""
    stored, original_size = stored_image(data, image)
    return {
        "phash": to_signed64(phash(stored)),
        "phash_flipped": to_signed64(phash(stored.transpose(Image.Transpose.FLIP_LEFT_RIGHT))),
        **image_features(stored, original_size, image),
        "thumbnail_zoomed": zoomed_thumbnails(stored, picture_box(stored.size, original_size, image)),
    }


@dataclass(frozen=True)
class HashTask:
    """Benchmark images hashed by one Spark task: a chunk of a folder's files, or one tar."""

    source: BenchmarkSource
    files: tuple[str, ...]


@dataclass(frozen=True)
class HashBenchmarkImages(ShardStep[HashTask, None]):
    """Hash the images of one :class:`HashTask`; bad images are returned as errors, not raised."""

    image: ImageOptions

    name = "corpusforge-dedup-hash"
    description = "hashing benchmarks"

    def process(self, task: HashTask, state: None) -> dict[str, Any]:
        return _hash_images(task.source, task.files, self.image)


def source_images(
    source: BenchmarkSource, files: tuple[str, ...], errors: list[str]
) -> Iterator[tuple[str, bytes]]:
    """``(member, file bytes)`` of the images of ``files`` of a folder or tar source; an unreadable
    tar is added to ``errors`` (named with its file), not raised."""
    if source.kind == FOLDER:
        for file in files:
            yield source.member_of(file), read_file(file)
        return
    for file in files:
        prefix = source.member_of(file).removesuffix(".tar") + "/" if len(source.files) > 1 else ""
        try:
            for key, data in iter_tar_images(file):
                yield prefix + key, data
        except UserInputError as exc:
            errors.append(str(exc))


def _hash_images(source: BenchmarkSource, files: tuple[str, ...], image: ImageOptions) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    errors: list[str] = []
    for member, data in source_images(source, files, errors):
        try:
            hashed = hash_image(data, image)
        except SampleError as exc:
            errors.append(f"{source.path}: {member}: {exc.error_class.value}: {exc.message}")
            continue
        rows.append(
            {
                "benchmark_id": f"{source.name}/{member}",
                "source": source.path,
                "member": member,
                "sha256": hashlib.sha256(data).hexdigest(),
                **hashed,
            }
        )
    return {"rows": rows, "errors": errors, "images": len(rows) + len(errors)}


def read_precomputed(source: BenchmarkSource) -> list[dict[str, Any]]:
    """Rows of a parquet of precomputed hashes (``phash`` as int64, uint64 or 16 hex digits)."""
    path = source.files[0]
    try:
        with fsspec.open(path, "rb") as handle:
            table = pq.ParquetFile(handle).read()
    except (OSError, pa.ArrowInvalid) as exc:
        raise UserInputError(f"--benchmark {source.path}: not a readable parquet file ({exc})") from exc
    if "phash" not in table.column_names:
        raise UserInputError(
            f"--benchmark {source.path}: no 'phash' column (columns: {', '.join(table.column_names)})"
        )
    hashes = [_parse_hash(v, source, i) for i, v in enumerate(table.column("phash").to_pylist())]

    def optional_hashes(name: str) -> list[int | None]:
        if name not in table.column_names:
            return [None] * len(hashes)
        return [
            None if v is None else _parse_hash(v, source, i)
            for i, v in enumerate(table.column(name).to_pylist())
        ]

    flipped, centre = optional_hashes("phash_flipped"), optional_hashes("phash_centre")
    ids = (
        table.column("benchmark_id").to_pylist()
        if "benchmark_id" in table.column_names
        else [f"{source.name}/{i}" for i in range(len(hashes))]
    )

    def optional(name: str) -> list[Any]:
        return table.column(name).to_pylist() if name in table.column_names else [None] * len(hashes)

    members, complexities, signatures, thumbnails, zoomed, unbarred = (
        optional("member"),
        optional("complexity"),
        optional("colour_signature"),
        optional("thumbnail"),
        optional("thumbnail_zoomed"),
        optional("thumbnail_unbarred"),
    )
    sha256s = optional("sha256")
    rows = []
    for i, bid in enumerate(ids):
        if bid is None:
            raise UserInputError(f"--benchmark {source.path}: row {i} has a null benchmark_id")
        rows.append(
            {
                "benchmark_id": str(bid),
                "source": source.path,
                "member": members[i],
                "phash": hashes[i],
                "phash_flipped": flipped[i],
                "phash_centre": centre[i],
                "complexity": complexities[i],
                "colour_signature": signatures[i],
                "thumbnail": thumbnails[i] if _is_thumbnail(thumbnails[i]) else None,
                "thumbnail_zoomed": zoomed[i]
                if _is_thumbnail(thumbnails[i]) and _is_zoomed(zoomed[i])
                else None,
                "thumbnail_unbarred": unbarred[i]
                if _is_thumbnail(thumbnails[i]) and _is_thumbnail(unbarred[i])
                else None,
                "sha256": sha256s[i],
            }
        )
    return rows


def _is_thumbnail(value: Any) -> bool:
    """A verification thumbnail as this version computes them (others are ignored, not trusted)."""
    return isinstance(value, bytes) and len(value) == THUMBNAIL_BYTES


def _is_zoomed(value: Any) -> bool:
    return isinstance(value, bytes) and len(value) == THUMBNAIL_BYTES * len(ZOOMS)


def _parse_hash(value: Any, source: BenchmarkSource, row: int) -> int:
    if isinstance(value, str):
        text = value.strip().lower().removeprefix("0x")
        if len(text) != 16:
            raise UserInputError(
                f"--benchmark {source.path}: row {row}: phash {value!r} is not 16 hex digits (64 bits)"
            )
        try:
            return to_signed64(int(text, 16))
        except ValueError as exc:
            raise UserInputError(f"--benchmark {source.path}: row {row}: phash {value!r} is not hex") from exc
    if isinstance(value, int) and not isinstance(value, bool):
        if not -(1 << 63) <= value < 1 << 64:
            raise UserInputError(f"--benchmark {source.path}: row {row}: phash {value} is not 64-bit")
        return to_signed64(value) if value >= 0 else value
    raise UserInputError(f"--benchmark {source.path}: row {row}: phash {value!r} is not an integer or hex")


def sources_fingerprint(sources: list[BenchmarkSource], image: ImageOptions) -> str:
    """What the benchmark hash table depends on (sources' files and versions, image options)."""
    return fingerprint(
        hashing_version=HASHING_VERSION,
        schema=BENCHMARK_HASHES_SCHEMA.metadata[b"corpusforge.schema_version"].decode(),
        image=image_record(image),
        sources=[
            {"path": s.path, "name": s.name, "kind": s.kind, "files": [list(f) for f in s.fingerprint]}
            for s in sources
        ],
    )


def benchmark_hashes(
    executor: SparkExecutor,
    dataset: Dataset,
    sources: list[BenchmarkSource],
    image: ImageOptions,
    skip_bad_images: bool = False,
    rehash: bool = False,
) -> tuple[pa.Table, dict[str, Any]]:
    """The benchmark hash table (computed, or reused when sources and options are unchanged).

    Returns the table and a summary (images hashed, reused or not, images skipped with reasons).
    Bad benchmark images fail the job unless ``skip_bad_images``: a benchmark image that cannot
    be hashed is one the corpus cannot be cleaned of.
    """
    folder = dataset.dedup
    output = folder.benchmark_output
    if rehash:
        dataset.storage.remove(*output.marker)
    skipped: list[str] = []

    def work(commit: ShardCommit) -> dict[str, Any]:
        table, errors = _hash_sources(executor, sources, image, skip_bad_images)
        skipped.extend(errors)
        commit.write_parquet(table, *folder.benchmark_hashes.parts)
        log.info("hashed %d benchmark images (%d skipped)", table.num_rows, len(errors))
        return {"benchmark_images": table.num_rows, "skipped": len(errors)}

    marker = run_shard(dataset.storage, output, sources_fingerprint(sources, image), work)
    try:
        table = folder.benchmark_hashes.read()
    except SchemaMismatch as exc:
        raise UserInputError(f"{exc}; pass --rehash-benchmarks to hash the benchmark sources again") from exc
    if marker["resumed"]:
        log.info("reusing %d benchmark hashes from %s", table.num_rows, folder.benchmark_hashes.path)
    return table, {"benchmark_images": table.num_rows, "reused": marker["resumed"], "skipped": skipped}


def image_tasks(sources: list[BenchmarkSource]) -> list[HashTask]:
    """The Spark tasks that read the images of ``sources``: chunks of a folder's files, one per tar
    (precomputed hashes have no images)."""
    tasks: list[HashTask] = []
    for source in sources:
        if source.kind == FOLDER:
            for start in range(0, len(source.files), FILES_PER_TASK):
                tasks.append(HashTask(source, source.files[start : start + FILES_PER_TASK]))
        elif source.kind != HASHES:
            tasks.extend(HashTask(source, (f,)) for f in source.files)
    return tasks


def _hash_sources(
    executor: SparkExecutor, sources: list[BenchmarkSource], image: ImageOptions, skip_bad_images: bool
) -> tuple[pa.Table, list[str]]:
    rows: list[dict[str, Any]] = []
    for source in sources:
        if source.kind == HASHES:
            rows.extend(read_precomputed(source))
    tasks = image_tasks(sources)
    results = executor.map(HashBenchmarkImages(image), tasks)
    errors = [e for r in results for e in r["errors"]]
    rows.extend(row for r in results for row in r["rows"])
    if errors and not skip_bad_images:
        shown = "\n  ".join(errors[:MAX_ERRORS_SHOWN])
        more = f"\n  ... and {len(errors) - MAX_ERRORS_SHOWN} more" if len(errors) > MAX_ERRORS_SHOWN else ""
        raise UserInputError(
            f"{len(errors)} benchmark image(s) could not be hashed (pass --skip-bad-benchmark-images "
            f"to skip them):\n  {shown}{more}"
        )
    for error in errors:
        log.warning("skipped benchmark image: %s", error)
    ids = [r["benchmark_id"] for r in rows]
    if len(set(ids)) != len(ids):
        repeated = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise UserInputError(f"benchmark ids are not unique: {', '.join(repeated)}")
    if not rows:
        raise UserInputError("the --benchmark sources hold no usable image or hash")
    rows.sort(key=lambda r: r["benchmark_id"])
    return pa.Table.from_pylist(rows, schema=BENCHMARK_HASHES_SCHEMA), errors
