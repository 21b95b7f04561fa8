"""Hashing benchmark images the way corpus images were hashed, and reusing the result.

A benchmark image goes through :func:`pipeline.image.process.stored_image` with the download
job's own image options (``raw/_options.json``): the same decode, resize and border as the
corpus, then the same pHash. The table is saved as ``dedup/benchmark_hashes.parquet`` with a
fingerprint of its sources; a later run with unchanged sources and options reuses it.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict
from typing import Any

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
from pipeline.dedup.centre import centre_phash
from pipeline.dedup.complexity import colour_signature, complexity
from pipeline.errors import SampleError, UserInputError
from pipeline.image.options import ImageOptions
from pipeline.image.phash import phash, to_signed64
from pipeline.image.process import stored_image
from pipeline.spark_progress import run_with_progress
from schemas.contract import SchemaMismatch, check_schema
from schemas.dedup import BENCHMARK_HASHES_SCHEMA, DEDUP_DIR

log = logging.getLogger(__name__)

HASHES_FILE = "benchmark_hashes.parquet"
FINGERPRINT_FILE = "_benchmark_sources.json"
FILES_PER_TASK = 200
MAX_ERRORS_SHOWN = 10
# Bump when the hashing of benchmark images changes, so saved tables are not reused.
HASHING_VERSION = 2


def hash_image(data: bytes, image: ImageOptions) -> dict[str, Any]:
    """pHash (plain, mirrored, of the centre), complexity and colour signature of one benchmark image file."""
    stored, _ = stored_image(data, image)
    return {
        "phash": to_signed64(phash(stored)),
        "phash_flipped": to_signed64(phash(stored.transpose(Image.Transpose.FLIP_LEFT_RIGHT))),
        "phash_centre": to_signed64(centre_phash(stored, image.border_color)),
        "complexity": complexity(stored, image.border_color),
        "colour_signature": colour_signature(stored, image.border_color).tobytes(),
    }


def _hash_task(item: tuple[BenchmarkSource, tuple[str, ...], ImageOptions]) -> dict[str, Any]:
    """Hash one chunk of image files, or one tar; errors are returned, not raised."""
    source, files, image = item
    rows: list[dict[str, Any]] = []
    errors: list[str] = []

    def add(member: str, data: bytes) -> None:
        try:
            hashed = hash_image(data, image)
        except SampleError as exc:
            errors.append(f"{source.path}: {member}: {exc.error_class.value}: {exc.message}")
            return
        rows.append(
            {
                "benchmark_id": f"{source.name}/{member}",
                "source": source.path,
                "member": member,
                "sha256": hashlib.sha256(data).hexdigest(),
                **hashed,
            }
        )

    if source.kind == FOLDER:
        for file in files:
            add(source.member_of(file), read_file(file))
    else:
        for file in files:
            prefix = source.member_of(file).removesuffix(".tar") + "/" if len(source.files) > 1 else ""
            try:
                for key, data in iter_tar_images(file):
                    add(prefix + key, data)
            except UserInputError as exc:
                errors.append(str(exc))
    return {"rows": rows, "errors": errors, "images": len(rows) + len(errors)}


def read_precomputed(source: BenchmarkSource) -> list[dict[str, Any]]:
    """Rows of a parquet of precomputed hashes (``phash`` as int64, uint64 or 16 hex digits)."""
    path = source.files[0]
    try:
        table = pq.read_table(path)
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

    members, complexities, signatures = (
        optional("member"),
        optional("complexity"),
        optional("colour_signature"),
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
                "sha256": sha256s[i],
            }
        )
    return rows


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


def _fingerprint(sources: list[BenchmarkSource], image: ImageOptions) -> dict[str, Any]:
    import json

    return json.loads(
        json.dumps(
            {
                "hashing_version": HASHING_VERSION,
                "image": asdict(image),
                "sources": [
                    {
                        "path": s.path,
                        "name": s.name,
                        "kind": s.kind,
                        "files": [list(f) for f in s.fingerprint],
                    }
                    for s in sources
                ],
            }
        )
    )


def benchmark_hashes(
    spark: Any,
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
    wanted = _fingerprint(sources, image)
    saved = None if rehash else _saved_table(dataset, wanted)
    if saved is not None:
        log.info("reusing %d benchmark hashes from %s", saved.num_rows, dataset.path(DEDUP_DIR, HASHES_FILE))
        return saved, {"benchmark_images": saved.num_rows, "reused": True, "skipped": []}
    rows: list[dict[str, Any]] = []
    tasks: list[tuple[BenchmarkSource, tuple[str, ...], ImageOptions]] = []
    for source in sources:
        if source.kind == HASHES:
            rows.extend(read_precomputed(source))
        elif source.kind == FOLDER:
            for start in range(0, len(source.files), FILES_PER_TASK):
                tasks.append((source, source.files[start : start + FILES_PER_TASK], image))
        else:
            tasks.extend((source, (f,), image) for f in source.files)
    results = run_with_progress(spark, tasks, _hash_task, "corpusforge-dedup-hash", "hashing benchmarks")
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
    table = pa.Table.from_pylist(rows, schema=BENCHMARK_HASHES_SCHEMA)
    dataset.makedirs(DEDUP_DIR)
    dataset.write_parquet_atomic(table, DEDUP_DIR, HASHES_FILE)
    dataset.write_json_atomic(wanted, DEDUP_DIR, FINGERPRINT_FILE)
    log.info("hashed %d benchmark images (%d skipped)", table.num_rows, len(errors))
    return table, {"benchmark_images": table.num_rows, "reused": False, "skipped": errors}


def _saved_table(dataset: Dataset, wanted: dict[str, Any]) -> pa.Table | None:
    """The saved table, if it was hashed from the same sources with the same options."""
    if not (dataset.exists(DEDUP_DIR, HASHES_FILE) and dataset.exists(DEDUP_DIR, FINGERPRINT_FILE)):
        return None
    if dataset.read_json(DEDUP_DIR, FINGERPRINT_FILE) != wanted:
        return None
    path = dataset.path(DEDUP_DIR, HASHES_FILE)
    with dataset.fs.open(path, "rb") as handle:
        table = pq.read_table(handle)
    try:
        check_schema(table.schema, BENCHMARK_HASHES_SCHEMA, path)
    except SchemaMismatch as exc:
        log.warning("not reusing saved benchmark hashes: %s", exc)
        return None
    return table
