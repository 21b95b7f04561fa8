"""Corpus samples within ``max_distance`` of a benchmark hash: exact search, two executions.

- Broadcast (the usual case): the benchmark side is small, so its :class:`HammingIndex` is
  built once on the driver, broadcast, and every raw shard is searched by one Spark task.
- Shuffle join: when the index would exceed ``--broadcast-limit-mb`` (millions of benchmark
  hashes), the same band plan runs as a Spark equi-join (:mod:`pipeline.dedup.spark_join`).

Both return every candidate pair (before the low-complexity rule) and agree exactly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.dedup.corpus import shard_hashes
from pipeline.dedup.hamming import BandPlan, HammingIndex, _ball, plan_bands
from pipeline.dedup.spark_join import hamming_join, join_plan
from pipeline.spark_progress import run_with_progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Candidate:
    """A corpus sample within the distance of a benchmark image (``flipped``: of its mirror)."""

    uid: str
    shard: int
    benchmark_row: int
    distance: int
    flipped: bool


def query_hashes(phash: np.ndarray, flipped: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The benchmark hashes to search for, and for each the benchmark row it stands for.

    With flip-invariant matching, the mirrored hashes are appended (row ``i + n`` is row ``i``
    flipped); rows whose mirrored hash is unknown are left out.
    """
    rows = np.arange(len(phash), dtype=np.int64)
    if flipped is None:
        return phash.astype(np.int64), rows
    known = np.array([v is not None for v in flipped], dtype=bool)
    mirrored = np.array([v for v in flipped if v is not None], dtype=np.int64)
    return np.concatenate([phash.astype(np.int64), mirrored]), np.concatenate(
        [rows, rows[known] + len(phash)]
    )


def _search_shard(
    dataset_url: str, shard: int, index: Any, rows: np.ndarray, n_benchmark: int
) -> dict[str, Any]:
    uids, hashes = shard_hashes(dataset_url, shard)
    query, hit, distance = index.value.search(hashes) if len(hashes) else ([], [], [])
    found = [
        (uids[q], shard, int(rows[h] % n_benchmark), int(d), bool(rows[h] >= n_benchmark))
        for q, h, d in zip(query, hit, distance, strict=True)
    ]
    return {"candidates": found, "hashes": len(hashes), "matches": len(found)}


def broadcast_search(
    spark: Any,
    dataset_url: str,
    shards: list[int],
    rows: np.ndarray,
    n_benchmark: int,
    index: HammingIndex,
) -> list[Candidate]:
    """Search every shard against a broadcast index (one Spark task per shard)."""
    broadcast = spark.sparkContext.broadcast(index)
    try:
        results = run_with_progress(
            spark,
            shards,
            lambda shard: _search_shard(dataset_url, shard, broadcast, rows, n_benchmark),
            "corpusforge-dedup-match",
            "matching benchmarks",
            counters=("matches",),
        )
    finally:
        broadcast.destroy()
    return [Candidate(*c) for r in results for c in r["candidates"]]


def join_search(
    spark: Any,
    corpus: Any,
    corpus_count: int,
    hashes: np.ndarray,
    rows: np.ndarray,
    n_benchmark: int,
    max_distance: int,
) -> list[Candidate]:
    """Search with a Spark shuffle join (benchmark side expanded) instead of a broadcast index."""
    from pyspark.sql import types as T

    schema = T.StructType([T.StructField("id", T.StringType()), T.StructField("phash", T.LongType())])
    bench = spark.createDataFrame([(str(i), int(h)) for i, h in enumerate(hashes)], schema)
    plan = join_plan(len(hashes), corpus_count, max_distance)
    log.info("benchmark shuffle join with %d bands, radius %d", len(plan.bands), plan.radius)
    pairs = hamming_join(bench, corpus.selectExpr("uid AS id", "phash"), plan)
    shard_of = corpus.select("uid", "shard")
    found = pairs.join(shard_of, pairs.right_id == shard_of.uid).select("uid", "shard", "left_id", "distance")
    out = []
    for uid, shard, left, distance in found.collect():
        row = int(rows[int(left)])
        out.append(Candidate(uid, int(shard), row % n_benchmark, int(distance), row >= n_benchmark))
    return out


def search_benchmarks(
    spark: Any,
    dataset_url: str,
    shards: list[int],
    corpus: Any,
    corpus_count: int,
    phash: np.ndarray,
    flipped: np.ndarray | None,
    max_distance: int,
    broadcast_limit_mb: int,
) -> tuple[list[Candidate], str]:
    """All candidate (corpus sample, benchmark image) pairs; also says which execution ran."""
    hashes, rows = query_hashes(phash, flipped)
    plan = plan_bands(len(hashes), corpus_count, max_distance)
    estimate = estimated_index_bytes(len(hashes), plan)
    if estimate <= broadcast_limit_mb * 2**20:
        index = HammingIndex(hashes, max_distance, plan)
        log.info("benchmark index of %d hashes: %.1f MiB, broadcast", len(hashes), index.nbytes / 2**20)
        return broadcast_search(spark, dataset_url, shards, rows, len(phash), index), "broadcast"
    log.info(
        "benchmark index of %d hashes would take ~%.0f MiB (> --broadcast-limit-mb %d): shuffle join",
        len(hashes),
        estimate / 2**20,
        broadcast_limit_mb,
    )
    return join_search(spark, corpus, corpus_count, hashes, rows, len(phash), max_distance), "shuffle_join"


def estimated_index_bytes(n_hashes: int, plan: BandPlan) -> int:
    """Rough size of a :class:`HammingIndex` (12 bytes per expansion row), before building it."""
    if plan.brute_force:
        return 8 * n_hashes
    rows = sum(n_hashes * _ball(width, plan.radius) for _, width in plan.bands)
    return 12 * rows


def closest(candidates: list[Candidate]) -> dict[str, Candidate]:
    """Per corpus sample, its closest benchmark match (ties: lowest benchmark row, unflipped first)."""
    best: dict[str, Candidate] = {}
    for c in sorted(candidates, key=lambda c: (c.distance, c.benchmark_row, c.flipped)):
        best.setdefault(c.uid, c)
    return best
