"""Every hash candidate checked on the executors before anything is dropped.

The searches return candidate pairs; here each pair gets its second opinion
(:class:`pipeline.dedup.verify.Verifier`: the low-complexity rule and the verification
thumbnails) where the corpus side's features are: in Spark tasks that read the per-shard feature
cache (:mod:`pipeline.dedup.features`). Thumbnails never travel to the driver.

- Benchmark candidates: one task per raw shard that holds any; the benchmark side of the pairs
  (the rows candidates name, not the whole table) is broadcast. Each candidate comes back with
  all its signals: both pHash distances, the thumbnail distance and the verdict.
- Within-corpus near-duplicate pairs: a Spark join of the pairs with the features of the samples
  they name (read per shard by tasks), compared partition by partition; the verdicts stay a
  DataFrame (one row per pair), never collected to the driver.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from pipeline.dataset import Dataset
from pipeline.dedup.benchmark_matches import Candidate
from pipeline.dedup.corpus import shard_hashes
from pipeline.dedup.features import FeatureCache, features_of
from pipeline.dedup.guard import UNKNOWN, ImageFeatures
from pipeline.dedup.verify import Verifier
from pipeline.dedup.within_corpus import pair_ends
from pipeline.executor import SparkExecutor
from pipeline.image.phash import from_signed64
from pipeline.stage import ShardStep

SIGNAL_SHA256 = "sha256"
SIGNAL_PHASH = "phash"
SIGNAL_MIRRORED = "phash_mirrored"
SIGNAL_CENTRE = "phash_centre"
SIGNAL_EMBEDDING = "embedding"
SIGNAL_LAYOUT = "layout"
SIGNAL_THUMBNAIL = "thumbnail"


@dataclass(frozen=True)
class Checked(Candidate):
    """A benchmark candidate with every signal measured and the verifier's verdict.

    ``phash_distance``: of the whole-picture hashes (to the mirror for a mirrored match);
    ``centre_distance``: of the centre hashes (None when the benchmark image has none, or for a
    mirrored match); ``thumbnail_distance``: None when not compared.
    """

    phash_distance: int = 0
    centre_distance: int | None = None
    thumbnail_distance: float | None = None
    guard: bool = True
    accepted: bool = True

    @property
    def verified(self) -> bool | None:
        return None if self.thumbnail_distance is None else self.accepted

    def signals(
        self,
        max_distance: int,
        centre_max_distance: int,
        min_similarity: float | None = None,
        min_layout_similarity: float | None = None,
    ) -> list[str]:
        """The signals that agreed, each within its threshold (``min_similarity``: of the
        embeddings, ``min_layout_similarity``: of the layouts, None when they were not used)."""
        found = []
        if self.phash_distance <= max_distance:
            found.append(SIGNAL_MIRRORED if self.flipped else SIGNAL_PHASH)
        if (
            self.centre_distance is not None
            and centre_max_distance >= 0
            and self.centre_distance <= centre_max_distance
        ):
            found.append(SIGNAL_CENTRE)
        if min_similarity is not None and self.similarity is not None and self.similarity >= min_similarity:
            found.append(SIGNAL_EMBEDDING)
        if (
            min_layout_similarity is not None
            and self.layout_similarity is not None
            and self.layout_similarity >= min_layout_similarity
        ):
            found.append(SIGNAL_LAYOUT)
        if self.verified:
            found.append(SIGNAL_THUMBNAIL)
        return found


@dataclass(frozen=True)
class BenchmarkRow:
    """What the checks need of one benchmark image."""

    phash: int  # unsigned
    phash_flipped: int | None
    phash_centre: int | None
    features: ImageFeatures


def benchmark_rows(table: pa.Table, rows: Iterable[int]) -> dict[int, BenchmarkRow]:
    """The benchmark rows named (by position in the benchmark hash table)."""
    wanted = sorted(set(rows))
    if not wanted:
        return {}
    part = table.take(pa.array(wanted, type=pa.int64())).to_pylist()

    def unsigned(value: int | None) -> int | None:
        return None if value is None else from_signed64(value)

    return {
        row: BenchmarkRow(
            from_signed64(r["phash"]),
            unsigned(r["phash_flipped"]),
            unsigned(r["phash_centre"]),
            features_of(r),
        )
        for row, r in zip(wanted, part, strict=True)
    }


@dataclass(frozen=True)
class CheckTask:
    """The benchmark candidates of one raw shard."""

    shard: int
    candidates: tuple[Candidate, ...]


@dataclass(frozen=True)
class CheckCandidates(ShardStep[CheckTask, None]):
    """Measure every signal of one shard's benchmark candidates and ask the verifier."""

    dataset: Dataset
    cache: FeatureCache
    benchmark: Any  # a Spark broadcast of dict[int, BenchmarkRow]
    verifier: Verifier

    name = "corpusforge-dedup-verify"
    description = "verifying candidates"
    counters = ("rejected",)

    def process(self, task: CheckTask, state: None) -> dict[str, Any]:
        checked = check_shard(self.dataset, self.cache, self.benchmark.value, self.verifier, task)
        return {"checked": checked, "rejected": sum(not c.accepted for c in checked)}


def check_shard(
    dataset: Dataset,
    cache: FeatureCache,
    benchmark: dict[int, BenchmarkRow],
    verifier: Verifier,
    task: CheckTask,
) -> list[Checked]:
    """:class:`CheckCandidates` on one task, in this process."""
    uids = {c.uid for c in task.candidates}
    cached = cache.features(dataset, task.shard, uids)
    names, hashes = shard_hashes(dataset, task.shard)
    phash = {u: from_signed64(int(h)) for u, h in zip(names, hashes, strict=True) if u in uids}
    # One comparison per (sample, benchmark image, orientation), however many hashes found it.
    pairs: dict[tuple[str, int, bool], int] = {}
    sides: list[tuple[ImageFeatures, ImageFeatures]] = []
    for c in task.candidates:
        key = (c.uid, c.benchmark_row, c.flipped)
        if key not in pairs:
            bench = benchmark[c.benchmark_row].features
            sample = cached.get(c.uid)
            pairs[key] = len(sides)
            sides.append(
                (bench.mirrored() if c.flipped else bench, features_of(sample) if sample else UNKNOWN)
            )
    verdicts = verifier.check(sides)
    out = []
    for c in task.candidates:
        bench = benchmark[c.benchmark_row]
        verdict = verdicts[pairs[(c.uid, c.benchmark_row, c.flipped)]]
        sample = cached.get(c.uid)
        theirs = bench.phash_flipped if c.flipped else bench.phash
        whole = c.distance if theirs is None else _distance(theirs, phash.get(c.uid))
        centre = None
        if not c.flipped and bench.phash_centre is not None and sample is not None:
            centre = _distance(bench.phash_centre, from_signed64(sample["phash_centre"]))
        out.append(
            Checked(
                c.uid,
                c.shard,
                c.benchmark_row,
                c.distance,
                c.flipped,
                c.centre,
                c.similarity,
                c.embedding,
                c.layout,
                c.layout_similarity,
                phash_distance=c.distance if whole is None else whole,
                centre_distance=centre,
                thumbnail_distance=verdict.thumbnail_distance,
                guard=verdict.guard,
                accepted=verdict.accepted,
            )
        )
    return out


def _distance(a: int, b: int | None) -> int | None:
    return None if b is None else bin(a ^ b).count("1")


def check_benchmark_candidates(
    executor: SparkExecutor,
    dataset: Dataset,
    cache: FeatureCache,
    table: pa.Table,
    candidates: list[Candidate],
    verifier: Verifier,
) -> list[Checked]:
    """Every benchmark candidate with its signals and verdict (one Spark task per shard)."""
    if not candidates:
        return []
    by_shard: dict[int, list[Candidate]] = {}
    for c in candidates:
        by_shard.setdefault(c.shard, []).append(c)
    tasks = [CheckTask(shard, tuple(found)) for shard, found in sorted(by_shard.items())]
    broadcast = executor.context.broadcast(benchmark_rows(table, (c.benchmark_row for c in candidates)))
    try:
        results = executor.map(CheckCandidates(dataset, cache, broadcast, verifier), tasks)
    finally:
        broadcast.destroy()
    return [c for r in results for c in r["checked"]]


# -- within-corpus pairs ------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureRows:
    """The cached features of chosen samples of one shard, as rows (uid, complexity, signature,
    thumbnail, thumbnail inside bars).

    Called on a row (shard, uids): one raw shard and the uids wanted from it.
    """

    dataset: Dataset
    cache: FeatureCache

    def __call__(self, task: Any) -> list[tuple[str, float, bytes, bytes, bytes | None]]:
        shard, uids = task
        cached = self.cache.features(self.dataset, int(shard), set(uids))
        return [
            (u, r["complexity"], r["colour_signature"], r["thumbnail"], r["thumbnail_unbarred"])
            for u, r in cached.items()
        ]


@dataclass(frozen=True)
class PairChecker:
    """Verdicts for a partition of joined rows (a, b, a's features, b's features: complexity,
    signature, thumbnail, thumbnail inside bars).

    A side without cached features (none: every stored sample has them) is judged unknown.
    """

    verifier: Verifier
    batch: int = 512

    def __call__(self, rows: Iterator[Any]) -> Iterator[tuple[str, str, float | None, bool, bool]]:
        chunk: list[Any] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) >= self.batch:
                yield from self._check(chunk)
                chunk = []
        if chunk:
            yield from self._check(chunk)

    def _check(self, chunk: list[Any]) -> Iterator[tuple[str, str, float | None, bool, bool]]:
        sides = [
            (
                ImageFeatures.from_bytes(r[2], r[3], r[4], unbarred=r[5]),
                ImageFeatures.from_bytes(r[6], r[7], r[8], unbarred=r[9]),
            )
            for r in chunk
        ]
        for r, v in zip(chunk, self.verifier.check(sides, symmetric=True), strict=True):
            yield (r[0], r[1], v.thumbnail_distance, v.guard, v.accepted)


VERDICTS_SCHEMA = "a string, b string, thumbnail_distance double, guard boolean, accepted boolean"


def check_near_pairs(
    executor: SparkExecutor,
    dataset: Dataset,
    cache: FeatureCache,
    pairs: Any,
    samples: Any,
    verifier: Verifier,
) -> Any:
    """The verdict of every within-corpus candidate pair, as a Spark DataFrame.

    ``pairs``: DataFrame (a, b, ...); ``samples``: DataFrame (uid, shard, ...) of (at least) every
    sample the pairs name. Returns (a, b, thumbnail_distance, guard, accepted), one row per pair.
    Each raw shard's features are read by tasks that get the uids wanted from it through a Spark
    group-by, so the driver holds no pair and no uid.
    """
    from pyspark.sql import functions as F

    spark = executor.spark
    wanted = pair_ends(pairs).distinct()
    by_shard = samples.join(wanted, "uid").groupBy("shard").agg(F.collect_list("uid").alias("uids")).rdd
    features = spark.createDataFrame(
        by_shard.map(tuple).flatMap(FeatureRows(dataset, cache)),
        "uid string, complexity float, signature binary, thumbnail binary, unbarred binary",
    )

    def side(name: str) -> Any:
        return features.selectExpr(
            f"uid AS {name}",
            f"complexity AS {name}c",
            f"signature AS {name}sig",
            f"thumbnail AS {name}thumb",
            f"unbarred AS {name}bars",
        )

    joined = (
        pairs.select("a", "b")
        .join(side("a"), "a", "left")
        .join(side("b"), "b", "left")
        .select("a", "b", "ac", "asig", "athumb", "abars", "bc", "bsig", "bthumb", "bbars")
    )
    return spark.createDataFrame(joined.rdd.mapPartitions(PairChecker(verifier)), VERDICTS_SCHEMA)
