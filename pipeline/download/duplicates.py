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

import pyarrow.parquet as pq

from pipeline.dataset import Dataset
from pipeline.download.input_shards import INPUT_DIR
from pipeline.errors import ErrorClass

log = logging.getLogger(__name__)

DUPLICATES_MARKER = "_duplicates.json"
PAIR = "p"
URL = "u"


def _dups_name(dataset: Dataset, shard: int) -> str:
    return f"{dataset.shard_name(shard)}_dups.json"


def _shard_keys(dataset_url: str, shard: int) -> Iterator[tuple[tuple[str, str], int]]:
    dataset = Dataset(dataset_url)
    path = dataset.path(INPUT_DIR, f"{dataset.shard_name(shard)}.parquet")
    with dataset.fs.open(path, "rb") as handle:
        table = pq.read_table(handle, columns=["uid", "url", "row_index", "ingest_error"])
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


def _write_shard_dups(
    dataset_url: str, samples_per_shard: int, item: tuple[int, Iterable[tuple[int, str]]]
) -> dict[str, int]:
    shard, marks = item
    dataset = Dataset(dataset_url)
    entries = sorted(marks)
    payload = {
        str(row): (ErrorClass.DUPLICATE_PAIR if kind == PAIR else ErrorClass.DUPLICATE_URL).value
        for row, kind in entries
    }
    dataset.write_json_atomic(payload, INPUT_DIR, _dups_name(dataset, shard))
    counts = {"duplicate_pair": 0, "duplicate_url": 0}
    for kind in payload.values():
        counts[kind] += 1
    return counts


def mark_duplicates(spark: Any, dataset: Dataset, shard_count: int, samples_per_shard: int) -> dict[str, int]:
    """Find duplicates with a Spark shuffle (reused if already done); return counts by kind."""
    if dataset.exists(INPUT_DIR, DUPLICATES_MARKER):
        return dataset.read_json(INPUT_DIR, DUPLICATES_MARKER)
    url = dataset.url
    sc = spark.sparkContext
    keys = sc.parallelize(range(shard_count), max(1, shard_count)).flatMap(lambda s: _shard_keys(url, s))
    marks = (
        keys.groupByKey()
        .flatMap(_later_rows)
        # A later row with the same pair also has the same URL: the pair mark wins.
        .reduceByKey(lambda a, b: PAIR if PAIR in (a, b) else a)
        .map(lambda rk: (rk[0] // samples_per_shard, rk))
        .groupByKey()
    )
    counts = marks.map(lambda item: _write_shard_dups(url, samples_per_shard, item)).fold(
        {"duplicate_pair": 0, "duplicate_url": 0},
        lambda a, b: {k: a[k] + b[k] for k in a},
    )
    dataset.write_json_atomic(counts, INPUT_DIR, DUPLICATES_MARKER)
    log.info(
        "duplicates: %d repeated pairs, %d repeated URLs", counts["duplicate_pair"], counts["duplicate_url"]
    )
    return counts


def read_shard_duplicates(dataset: Dataset, shard: int) -> dict[int, str]:
    """Row index -> duplicate class for one shard (empty when it has none)."""
    name = _dups_name(dataset, shard)
    if not dataset.exists(INPUT_DIR, name):
        return {}
    return {int(row): kind for row, kind in dataset.read_json(INPUT_DIR, name).items()}
