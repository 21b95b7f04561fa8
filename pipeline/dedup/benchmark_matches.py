"""Corpus samples within ``max_distance`` of a benchmark hash: exact search, two executions.

- Broadcast (the usual case): the benchmark side is small, so its :class:`HammingIndex` is
  built once on the driver, broadcast, and every raw shard is searched by one Spark task.
- Shuffle join: when the index would exceed ``--broadcast-limit-mb`` (millions of benchmark
  hashes), the same band plan runs as a Spark equi-join (:mod:`pipeline.dedup.spark_join`).

Both return every candidate pair (before the low-complexity rule) and agree exactly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.dataset import Dataset
from pipeline.dedup.corpus import shard_hashes
from pipeline.dedup.hamming import BandPlan, HammingIndex, _ball, plan_bands
from pipeline.dedup.spark_join import hamming_join, join_plan
from pipeline.executor import SparkExecutor
from pipeline.stage import ShardStep

log = logging.getLogger(__name__)


HashReader = Callable[[Dataset, int], tuple[list[str], np.ndarray]]


@dataclass(frozen=True)
class Candidate:
    """A corpus sample within the distance of a benchmark image.

    ``flipped``: of the benchmark image's mirror; ``centre``: found by the centre hashes;
    ``embedding``: found by the image embeddings (``distance`` is then the pHash distance as
    measured); ``similarity``: the embeddings' cosine similarity, when measured; ``layout`` and
    ``layout_similarity``: the same for the layout vectors (:mod:`pipeline.dedup.layout`).
    """

    uid: str
    shard: int
    benchmark_row: int
    distance: int
    flipped: bool
    centre: bool = False
    similarity: float | None = None
    embedding: bool = False
    layout: bool = False
    layout_similarity: float | None = None


@dataclass(frozen=True)
class BenchmarkQuery:
    """Benchmark hashes to search for; hash ``i`` stands for benchmark row ``rows[i] % n_benchmark``
    (``rows[i] >= n_benchmark``: its mirror)."""

    hashes: np.ndarray
    rows: np.ndarray
    n_benchmark: int
    max_distance: int
    centre: bool = False

    @classmethod
    def whole(cls, phash: np.ndarray, flipped: np.ndarray | None, max_distance: int) -> BenchmarkQuery:
        """The whole-picture hashes (and their mirrors for flip-invariant matching)."""
        hashes, rows = query_hashes(phash, flipped)
        return cls(hashes, rows, len(phash), max_distance)

    @classmethod
    def centre_of(cls, centre: list[int | None], max_distance: int) -> BenchmarkQuery:
        """The centre hashes; benchmark rows without one (precomputed hashes) are left out."""
        rows = np.array([i for i, v in enumerate(centre) if v is not None], dtype=np.int64)
        hashes = np.array([centre[i] for i in rows], dtype=np.int64)
        return cls(hashes, rows, len(centre), max_distance, centre=True)


@dataclass(frozen=True)
class CorpusHashes:
    """The corpus side: raw shards read per task by ``read_shard``, or ``frame`` for the join."""

    dataset: Dataset
    shards: list[int]
    frame: Any  # Spark DataFrame (uid, shard, phash), evaluated only by the shuffle join
    count: int
    read_shard: HashReader = field(default=shard_hashes)


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


@dataclass(frozen=True)
class SearchShard(ShardStep[int, None]):
    """Search one raw shard's hashes against the broadcast benchmark index."""

    dataset: Dataset
    read_shard: HashReader
    index: Any  # a Spark broadcast of a HammingIndex
    query: BenchmarkQuery

    name = "corpusforge-dedup-match"
    counters = ("matches",)

    @property
    def description(self) -> str:  # type: ignore[override]
        return "matching benchmark " + ("centres" if self.query.centre else "images")

    def process(self, task: int, state: None) -> dict[str, Any]:
        uids, hashes = self.read_shard(self.dataset, task)
        found_at, hit, distance = self.index.value.search(hashes) if len(hashes) else ([], [], [])
        n, rows = self.query.n_benchmark, self.query.rows
        found = [
            (uids[q], task, int(rows[h] % n), int(d), bool(rows[h] >= n), self.query.centre)
            for q, h, d in zip(found_at, hit, distance, strict=True)
        ]
        return {"candidates": found, "hashes": len(hashes), "matches": len(found)}


def broadcast_search(
    executor: SparkExecutor, corpus: CorpusHashes, query: BenchmarkQuery, index: HammingIndex
) -> list[Candidate]:
    """Search every shard against a broadcast index (one Spark task per shard)."""
    broadcast = executor.context.broadcast(index)
    try:
        # Not `corpus` itself: its DataFrame stays on the driver.
        step = SearchShard(corpus.dataset, corpus.read_shard, broadcast, query)
        results = executor.map(step, corpus.shards)
    finally:
        broadcast.destroy()
    return [Candidate(*c) for r in results for c in r["candidates"]]


def join_search(executor: SparkExecutor, corpus: CorpusHashes, query: BenchmarkQuery) -> list[Candidate]:
    """Search with a Spark shuffle join (benchmark side expanded) instead of a broadcast index."""
    from pyspark.sql import types as T

    spark = executor.spark
    schema = T.StructType([T.StructField("id", T.StringType()), T.StructField("phash", T.LongType())])
    bench = spark.createDataFrame([(str(i), int(h)) for i, h in enumerate(query.hashes)], schema)
    plan = join_plan(len(query.hashes), corpus.count, query.max_distance)
    log.info("benchmark shuffle join with %d bands, radius %d", len(plan.bands), plan.radius)
    frame = corpus.frame
    pairs = hamming_join(bench, frame.selectExpr("uid AS id", "phash"), plan)
    shard_of = frame.select("uid", "shard")
    found = pairs.join(shard_of, pairs.right_id == shard_of.uid).select("uid", "shard", "left_id", "distance")
    n = query.n_benchmark
    out = []
    for uid, shard, left, distance in found.collect():
        row = int(query.rows[int(left)])
        out.append(Candidate(uid, int(shard), row % n, int(distance), row >= n, query.centre))
    return out


def search_benchmarks(
    executor: SparkExecutor, corpus: CorpusHashes, query: BenchmarkQuery, broadcast_limit_mb: int
) -> tuple[list[Candidate], str]:
    """All candidate (corpus sample, benchmark image) pairs; also says which execution ran."""
    if not len(query.hashes):
        return [], "none"
    plan = plan_bands(len(query.hashes), corpus.count, query.max_distance)
    estimate = estimated_index_bytes(len(query.hashes), plan)
    if estimate <= broadcast_limit_mb * 2**20:
        index = HammingIndex(query.hashes, query.max_distance, plan)
        log.info("benchmark index of %d hashes: %.1f MiB, broadcast", len(query.hashes), index.nbytes / 2**20)
        return broadcast_search(executor, corpus, query, index), "broadcast"
    log.info(
        "benchmark index of %d hashes would take ~%.0f MiB (> --broadcast-limit-mb %d): shuffle join",
        len(query.hashes),
        estimate / 2**20,
        broadcast_limit_mb,
    )
    return join_search(executor, corpus, query), "shuffle_join"


def estimated_index_bytes(n_hashes: int, plan: BandPlan) -> int:
    """Rough size of a :class:`HammingIndex` (12 bytes per expansion row), before building it."""
    if plan.brute_force:
        return 8 * n_hashes
    rows = sum(n_hashes * _ball(width, plan.radius) for _, width in plan.bands)
    return 12 * rows


def closest(candidates: list[Candidate]) -> dict[str, Candidate]:
    """Per corpus sample, its closest benchmark match.

    Ties: the lowest benchmark row, then a whole-picture match before a mirrored one before a
    centre one, a hash match before an embedding one.
    """
    best: dict[str, Candidate] = {}
    order = sorted(candidates, key=lambda c: (c.distance, c.benchmark_row, c.flipped, c.centre, c.embedding))
    for c in order:
        best.setdefault(c.uid, c)
    return best
