"""Finding duplicate pairs and duplicate URLs across all input shards with Spark.

The first occurrence (lowest input row) of a (URL, caption) pair or of a URL is the original;
later rows are marked. Results go to ``_input/NNNNN_dups.json`` for shards that have any, and
``_input/_duplicates.json`` (written last) with the counts.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from pipeline.dataset import Dataset
from pipeline.errors import ErrorClass

log = logging.getLogger(__name__)

DRIVER_LIMIT = 2_000_000  # rows; above it duplicates are found with a Spark shuffle
PAIR = "p"
URL = "u"


def _shard_keys(dataset: Dataset, shard: int) -> Iterator[tuple[tuple[str, str], int]]:
    table = dataset.input.shard(shard).table_file.read(columns=["uid", "url", "row_index", "ingest_error"])
    for uid, url, row, error in zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True):
        if error is not None:
            continue
        yield (PAIR, uid), row
        yield (URL, hashlib.blake2b(url.encode(), digest_size=12).hexdigest()), row


def _later_rows(item: tuple[tuple[str, str], Iterable[int]]) -> Iterator[tuple[int, str]]:
    (kind, _key), rows = item
    ordered = sorted(rows)
    for row in ordered[1:]:
        yield row, kind


def _write_shard_dups(dataset: Dataset, item: tuple[int, Iterable[tuple[int, str]]]) -> dict[str, int]:
    shard, marks = item
    entries = sorted(marks)
    payload = {
        str(row): (ErrorClass.DUPLICATE_PAIR if kind == PAIR else ErrorClass.DUPLICATE_URL).value
        for row, kind in entries
    }
    dataset.storage.write_json(payload, *dataset.input.shard(shard).duplicates_file)
    counts = {"duplicate_pair": 0, "duplicate_url": 0}
    for kind in payload.values():
        counts[kind] += 1
    return counts


def mark_duplicates(
    executor: Any,
    dataset: Dataset,
    shard_count: int,
    samples_per_shard: int,
    total_rows: int,
    driver_limit: int = DRIVER_LIMIT,
) -> dict[str, int]:
    """Find duplicates (reused if already done) and return counts by kind.

    Lists of up to ``driver_limit`` rows are handled on the driver with numpy (32 bytes a row,
    so memory stays bounded by the limit, not by the list): a Spark shuffle costs seconds of
    fixed overhead. Longer lists use a Spark shuffle. Both write the same files.
    """
    marker = dataset.input.duplicates_marker
    if dataset.storage.exists(*marker):
        return dataset.storage.read_json(*marker)
    if total_rows <= driver_limit:
        counts = _mark_on_driver(dataset, shard_count, samples_per_shard)
    else:
        counts = _mark_with_spark(executor, dataset, shard_count, samples_per_shard)
    dataset.storage.write_json(counts, *marker)
    log.info(
        "duplicates: %d repeated pairs, %d repeated URLs", counts["duplicate_pair"], counts["duplicate_url"]
    )
    return counts


def _mark_with_spark(
    executor: Any, dataset: Dataset, shard_count: int, samples_per_shard: int
) -> dict[str, int]:
    keys = executor.flat_map(range(shard_count), lambda s: _shard_keys(dataset, s))
    marks = (
        keys.groupByKey()
        .flatMap(_later_rows)
        # A later row with the same pair also has the same URL: the pair mark wins.
        .reduceByKey(lambda a, b: PAIR if PAIR in (a, b) else a)
        .map(lambda rk: (rk[0] // samples_per_shard, rk))
        .groupByKey()
    )
    return marks.map(lambda item: _write_shard_dups(dataset, item)).fold(
        {"duplicate_pair": 0, "duplicate_url": 0},
        lambda a, b: {k: a[k] + b[k] for k in a},
    )


def _mark_on_driver(dataset: Dataset, shard_count: int, samples_per_shard: int) -> dict[str, int]:
    rows: list[int] = []
    pair_keys: list[bytes] = []
    url_keys: list[bytes] = []
    for shard in range(shard_count):
        for (kind, key), row in _shard_keys(dataset, shard):
            if kind == PAIR:
                rows.append(row)
                pair_keys.append(bytes.fromhex(key))
            else:
                url_keys.append(bytes.fromhex(key))
    if not rows:
        return {"duplicate_pair": 0, "duplicate_url": 0}
    row_array = np.asarray(rows, dtype=np.int64)
    pair_later = _later_occurrences(np.frombuffer(b"".join(pair_keys), dtype="V16"))
    url_later = _later_occurrences(np.frombuffer(b"".join(url_keys), dtype="V12"))
    marks: dict[int, list[tuple[int, str]]] = {}
    for index in np.flatnonzero(pair_later | url_later):
        row = int(row_array[index])
        marks.setdefault(row // samples_per_shard, []).append((row, PAIR if pair_later[index] else URL))
    counts = {"duplicate_pair": 0, "duplicate_url": 0}
    for item in marks.items():
        shard_counts = _write_shard_dups(dataset, item)
        counts = {k: counts[k] + shard_counts[k] for k in counts}
    return counts


def _later_occurrences(keys: np.ndarray) -> np.ndarray:
    """True for every element whose key appeared at a lower position (rows are in input order)."""
    _, first = np.unique(keys, return_index=True)
    later = np.ones(len(keys), dtype=bool)
    later[first] = False
    return later


def read_shard_duplicates(dataset: Dataset, shard: int) -> dict[int, str]:
    """Row index -> duplicate class for one shard (empty when it has none)."""
    recorded = dataset.storage.read_json_if_exists(*dataset.input.shard(shard).duplicates_file)
    return {} if recorded is None else {int(row): kind for row, kind in recorded.items()}
