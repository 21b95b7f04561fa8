"""The dedup stage: benchmark decontamination and within-corpus duplicates, as named steps.

Every step shares one :class:`DedupContext` (the options, the dataset, the corpus' image
options, the raw shards) and hands its result to the next explicitly:

1. ``corpus hashes``: every stored sample's uid, sha256 and pHash (a DataFrame, one Spark task
   per raw shard);
2. ``benchmark hashes``: the benchmark images hashed through the download's image path, or the
   saved table reused (:mod:`pipeline.dedup.benchmark_hashes`);
3. ``benchmark search``: every corpus sample within ``--max-distance`` of a benchmark hash
   (exact search), and within ``--centre-max-distance`` of a benchmark centre hash
   (:mod:`pipeline.dedup.centre`);
4. ``corpus duplicates``: exact duplicates by sha256, then near-duplicate pairs by pHash;
5. ``verify``: the low-complexity rule on every pHash candidate (reads only those images), the
   closest benchmark match per sample, one representative per near-duplicate group;
6. ``write``: the audit grid, then ``dedup/matches.parquet`` committed with the summary as its
   marker (one row per sample to drop).

The job is one global pass: a killed run leaves the previous outputs intact and a rerun redoes
the pass (benchmark hashes and corpus centre hashes are reused while their inputs are unchanged).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pyarrow as pa

from pipeline.cli_options import recorded
from pipeline.dataset import Dataset
from pipeline.dedup.audit import AuditMatch, SemanticAudit, write_audit
from pipeline.dedup.benchmark_hashes import benchmark_hashes
from pipeline.dedup.benchmark_matches import (
    BenchmarkQuery,
    Candidate,
    CorpusHashes,
    closest,
    search_benchmarks,
)
from pipeline.dedup.benchmark_sources import BenchmarkSource, image_bytes, resolve_sources
from pipeline.dedup.checks import (
    SIGNAL_EMBEDDING,
    SIGNAL_LAYOUT,
    SIGNAL_PHASH,
    SIGNAL_SHA256,
    SIGNAL_THUMBNAIL,
    Checked,
    check_benchmark_candidates,
    check_near_pairs,
)
from pipeline.dedup.corpus import shard_images, shard_rows
from pipeline.dedup.embeddings import (
    EMBEDDINGS,
    ScoredModel,
    VectorSource,
    benchmark_embeddings,
    scored_model,
    search_vectors,
)
from pipeline.dedup.features import FeatureCache
from pipeline.dedup.guard import ComplexityGuard
from pipeline.dedup.layout import QUERIES as LAYOUT_QUERIES
from pipeline.dedup.layout import benchmark_queries
from pipeline.dedup.options import DedupOptions
from pipeline.dedup.semantic import by_score, clip_scores, semantic_pairs
from pipeline.dedup.verify import Verifier
from pipeline.dedup.within_corpus import (
    best_thumbnail_distances,
    duplicate_groups,
    exact_duplicates,
    near_duplicate_pairs,
    pair_ends,
    pair_samples,
)
from pipeline.errors import UserInputError
from pipeline.executor import SparkExecutor
from pipeline.image.options import ImageOptions, image_options_from_record
from pipeline.runner import ShardCommit
from pipeline.stage import Stage
from schemas.dedup import MATCHES_SCHEMA, REASON_BENCHMARK, REASON_EXACT, REASON_NEAR, REASON_SEMANTIC

log = logging.getLogger(__name__)

_HASH_ROWS_SCHEMA = "uid string, shard int, phash long"


@dataclass(frozen=True)
class DedupContext:
    """What every dedup step shares."""

    options: DedupOptions
    dataset: Dataset
    executor: SparkExecutor
    image: ImageOptions
    shards: list[int]
    model: ScoredModel | None = None  # the score job's model, when embeddings are used

    @property
    def cache(self) -> FeatureCache:
        """The per-shard features (centre hash, rule features, thumbnail), computed on first use."""
        return FeatureCache(self.image)

    @property
    def verifier(self) -> Verifier:
        o = self.options
        return Verifier(ComplexityGuard(o.min_complexity, o.max_signature_distance), o.max_thumbnail_distance)


@dataclass(frozen=True)
class Benchmark:
    """The benchmark side: the hash table, its ids and what the low-complexity rule needs."""

    table: pa.Table
    sources: list[BenchmarkSource]
    summary: dict[str, Any]

    @property
    def ids(self) -> list[str]:
        return self.table.column("benchmark_id").to_pylist()


@dataclass(frozen=True)
class CorpusDuplicates:
    """The within-corpus candidates, as materialised Spark DataFrames (nothing on the driver).

    ``exact``: (uid, shard, representative, distance) per exact duplicate to drop;
    ``near_pairs``: (a, b, distance) per candidate pair; ``near_samples``: (uid, shard, phash,
    area) of every sample the pairs name; ``near_pair_count``: the number of pairs.
    None of the frames without ``--within-corpus``.
    """

    exact: Any
    near_pairs: Any
    near_samples: Any
    near_pair_count: int


def stored_image_options(dataset: Dataset) -> ImageOptions:
    """The image options the corpus was downloaded with (benchmark images get the same)."""
    record = dataset.raw.download_options()
    if record is None:
        log.warning(
            "%s is missing: hashing benchmark images with the default image options",
            dataset.display(*dataset.raw.options_file),
        )
        return ImageOptions()
    return image_options_from_record(record["image"])


@contextmanager
def _timed(name: str, seconds: dict[str, float]) -> Iterator[None]:
    started = time.time()
    log.info("dedup step: %s", name)
    yield
    seconds[name] = round(time.time() - started, 2)


class DedupStage(Stage[DedupOptions]):
    name = "dedup"
    options_type = DedupOptions
    description = (
        "Find corpus images that are near-duplicates of benchmark images (pHash within a Hamming "
        "distance, exact search) and duplicates within the corpus; write dedup/matches.parquet "
        "and an audit grid."
    )

    def check_inputs(self, options: DedupOptions) -> None:
        """Fail before Spark starts: no raw shards, or a --benchmark path that cannot be used."""
        dataset = Dataset(options.dataset)
        if not dataset.raw.complete_indices():
            raise UserInputError(
                f"{dataset.raw.display()} has no complete raw shards: run jobs/download.py first"
            )
        resolve_sources(options.benchmarks)
        if options.reads_embeddings:
            scored_model(dataset, dataset.raw.complete_indices())

    def run(self, executor: SparkExecutor, options: DedupOptions) -> dict[str, Any]:
        """Find benchmark duplicates and within-corpus duplicates; write matches, audit, summary."""
        started = time.time()
        dataset = Dataset(options.dataset)
        shards = dataset.raw.complete_indices()
        model = scored_model(dataset, shards) if options.reads_embeddings else None
        ctx = DedupContext(options, dataset, executor, stored_image_options(dataset), shards, model)
        folder = dataset.dedup
        folder.makedirs()
        # No task runs yet: temporaries are a dead run's.
        folder.remove_temporaries()
        dataset.storage.remove_temporaries(folder.centre_folder)
        seconds: dict[str, float] = {}
        summary: dict[str, Any] = {"shards": len(ctx.shards), "options": recorded(options)}
        with _timed("corpus hashes", seconds):
            corpus = corpus_frame(ctx).persist()
        try:
            count = corpus.count()
            summary["corpus_samples"] = count
            log.info("%d stored samples in %d raw shards", count, len(ctx.shards))
            with _timed("benchmark hashes", seconds):
                benchmark = hash_benchmarks(ctx)
            with _timed("benchmark search", seconds):
                candidates, search = search_all(ctx, corpus, count, benchmark)
            with _timed("corpus duplicates", seconds):
                duplicates = find_corpus_duplicates(ctx, corpus, count)
            semantic: list[SemanticDuplicate] = []
            if options.semantic:
                with _timed("semantic duplicates", seconds):
                    semantic, summary["semantic"] = find_semantic_duplicates(ctx, corpus, count)
        finally:
            corpus.unpersist()
        with _timed("verify", seconds):
            verified = verify(ctx, benchmark, candidates, duplicates)
        with _timed("write", seconds):
            ids = benchmark.ids if benchmark is not None else []
            rows = match_rows(ctx, verified, ids, duplicates.exact, semantic)
            reasons = Counter(r["reason"] for r in rows)
            if benchmark is not None:
                summary["benchmark"] = {**benchmark.summary, **search}
            best = verified.benchmark
            summary.update(
                {
                    **verified.counts,
                    "near_duplicate_pairs": duplicates.near_pair_count,
                    "matches": len(rows),
                    "by_reason": {
                        r: reasons.get(r, 0)
                        for r in (REASON_BENCHMARK, REASON_EXACT, REASON_NEAR, REASON_SEMANTIC)
                    },
                    "benchmark_images_matched": len({c.benchmark_row for c in best.values()}),
                    "benchmark_matches_by_hash": dict(
                        sorted(Counter(_matched_hash(c) for c in best.values()).items())
                    ),
                }
            )
            has_pairs = benchmark is not None and bool(best or verified.rejected)
            if options.audit_limit and (has_pairs or semantic):
                summary["audit"] = audit(ctx, benchmark.sources if benchmark else [], verified, ids, semantic)
        summary["step_seconds"] = seconds
        summary["seconds"] = round(time.time() - started, 2)
        commit = ShardCommit(dataset.storage, folder.matches_output)
        commit.write_parquet(pa.Table.from_pylist(rows, schema=MATCHES_SCHEMA), *folder.matches.parts)
        return commit.commit(summary)

    def format_summary(self, summary: dict[str, Any]) -> str:
        return format_summary(summary)


# -- step 1 ------------------------------------------------------------------------------------


def corpus_frame(ctx: DedupContext) -> Any:
    """(uid, shard, sha256, phash, area) of every stored sample, one Spark task per raw shard."""
    from pyspark.sql import types as T

    schema = T.StructType(
        [
            T.StructField("uid", T.StringType(), False),
            T.StructField("shard", T.IntegerType(), False),
            T.StructField("sha256", T.StringType(), True),
            T.StructField("phash", T.LongType(), False),
            T.StructField("area", T.LongType(), False),
        ]
    )
    dataset = ctx.dataset
    rows = ctx.executor.flat_map(ctx.shards, lambda shard: shard_rows(dataset, shard))
    return ctx.executor.spark.createDataFrame(rows, schema)


# -- step 2 ------------------------------------------------------------------------------------


def hash_benchmarks(ctx: DedupContext) -> Benchmark | None:
    """The benchmark hash table (None without --benchmark)."""
    sources = resolve_sources(ctx.options.benchmarks)
    if not sources:
        return None
    o = ctx.options
    table, hashing = benchmark_hashes(
        ctx.executor, ctx.dataset, sources, ctx.image, o.skip_bad_benchmark_images, o.rehash_benchmarks
    )
    return Benchmark(table, sources, hashing)


# -- step 3 ------------------------------------------------------------------------------------


def search_all(
    ctx: DedupContext, corpus: Any, count: int, benchmark: Benchmark | None
) -> tuple[list[Candidate], dict[str, Any]]:
    """Every (corpus sample, benchmark image) pair within reach of the whole or the centre hash,
    and how the search ran (executions, candidate counts)."""
    summary: dict[str, Any] = {}
    if benchmark is None:
        return [], summary
    o, table = ctx.options, benchmark.table
    phash = np.array(table.column("phash").to_pylist(), dtype=np.int64)
    flipped = np.array(table.column("phash_flipped").to_pylist(), dtype=object) if o.flip_invariant else None
    whole = CorpusHashes(ctx.dataset, ctx.shards, corpus, count)
    candidates, execution = search_benchmarks(
        ctx.executor, whole, BenchmarkQuery.whole(phash, flipped, o.max_distance), o.broadcast_limit_mb
    )
    summary["execution"] = execution
    summary["candidates"] = len(candidates)
    if o.centre_max_distance >= 0:
        query = BenchmarkQuery.centre_of(table.column("phash_centre").to_pylist(), o.centre_max_distance)
        found, execution = search_benchmarks(
            ctx.executor, centre_corpus(ctx, count), query, o.broadcast_limit_mb
        )
        candidates += found
        summary["centre_execution"] = execution
        summary["centre_candidates"] = len(found)
        summary["images_without_centre_hash"] = table.num_rows - len(query.hashes)
    if o.embeddings and ctx.model is not None:
        candidates, summary["embeddings"] = search_by_embeddings(ctx, ctx.model, benchmark, candidates)
    if o.searches_layouts:
        candidates, summary["layout"] = search_by_layout(ctx, benchmark, candidates)
    return candidates, summary


def search_by_embeddings(
    ctx: DedupContext, model: ScoredModel, benchmark: Benchmark, hash_candidates: list[Candidate]
) -> tuple[list[Candidate], dict[str, Any]]:
    """The hash candidates with their embedding similarity, plus the pairs only the embeddings
    found (:mod:`pipeline.dedup.embeddings`)."""
    o = ctx.options
    queries = benchmark_embeddings(
        ctx.executor, ctx.dataset, benchmark.sources, benchmark.ids, ctx.image, model, o.embedding_device
    )
    found, measured = search_vectors(
        ctx.executor,
        ctx.dataset,
        ctx.shards,
        EMBEDDINGS,
        queries.matrix,
        benchmark.table,
        hash_candidates,
        o.embedding_min_similarity,
    )
    by_hash = {(c.uid, c.benchmark_row) for c in hash_candidates}
    merged = [replace(c, similarity=measured.get((c.uid, c.benchmark_row))) for c in hash_candidates]
    only = [c for c in found if (c.uid, c.benchmark_row) not in by_hash]
    log.info("embeddings: %d candidate pairs the hashes did not find", len(only))
    return merged + only, {
        "model": model.model,
        "pretrained": model.pretrained,
        "benchmark_images_embedded": queries.embedded,
        "reused": queries.reused,
        "candidates": len(found),
        "candidates_not_found_by_hashes": len(only),
    }


def search_by_layout(
    ctx: DedupContext, benchmark: Benchmark, earlier: list[Candidate]
) -> tuple[list[Candidate], dict[str, Any]]:
    """The earlier candidates with their layout similarity, plus the pairs only the layouts found
    (:mod:`pipeline.dedup.layout`): the samples' vectors come from the cached thumbnails, the
    benchmark queries from the benchmark hash table, so nothing is decoded again."""
    table = benchmark.table
    queries = benchmark_queries(
        table.column("thumbnail").to_pylist(), table.column("thumbnail_zoomed").to_pylist()
    )
    source = VectorSource(SIGNAL_LAYOUT, ctx.cache.layouts, len(LAYOUT_QUERIES))
    found, measured = search_vectors(
        ctx.executor,
        ctx.dataset,
        ctx.shards,
        source,
        queries,
        table,
        earlier,
        ctx.options.layout_min_similarity,
    )
    before = {(c.uid, c.benchmark_row) for c in earlier}
    # A benchmark image that is not drawn has no layout queries: no similarity to report.
    searched = queries.reshape(table.num_rows, len(LAYOUT_QUERIES), -1).any(axis=(1, 2))
    merged = [
        replace(
            c, layout_similarity=measured.get((c.uid, c.benchmark_row)) if searched[c.benchmark_row] else None
        )
        for c in earlier
    ]
    only = [c for c in found if (c.uid, c.benchmark_row) not in before]
    log.info("layouts: %d candidate pairs the hashes and embeddings did not find", len(only))
    return merged + only, {
        "benchmark_images_searched": int(searched.sum()),
        "candidates": len(found),
        "candidates_not_found_before": len(only),
    }


def centre_corpus(ctx: DedupContext, count: int) -> CorpusHashes:
    """The corpus centre hashes: computed (or reused) per raw shard inside the search tasks."""
    read = ctx.cache
    dataset = ctx.dataset
    rows = ctx.executor.flat_map(ctx.shards, lambda shard: read.rows(dataset, shard))
    frame = ctx.executor.spark.createDataFrame(rows, _HASH_ROWS_SCHEMA)
    return CorpusHashes(dataset, ctx.shards, frame, count, read)


# -- step 4 ------------------------------------------------------------------------------------


def find_corpus_duplicates(ctx: DedupContext, corpus: Any, count: int) -> CorpusDuplicates:
    """Exact duplicates (sha256), then near-duplicate pairs (pHash) among the rest.

    All three frames are checkpointed here (``localCheckpoint``), so the later steps neither
    recompute the joins nor need ``corpus`` (which is unpersisted after this step).
    """
    if not ctx.options.within_corpus:
        return CorpusDuplicates(None, None, None, 0)
    exact = exact_duplicates(corpus).localCheckpoint(eager=True)
    dropped = exact.count()
    # An anti-join: the exact duplicates can be millions.
    remaining = corpus.join(exact.select("uid"), "uid", "left_anti") if dropped else corpus
    pairs = near_duplicate_pairs(remaining, count - dropped, ctx.options.near_duplicate_distance)
    pairs = pairs.localCheckpoint(eager=True)
    samples = pair_samples(pairs, remaining).localCheckpoint(eager=True)
    found = pairs.count()
    log.info("%d exact duplicates, %d near-duplicate candidate pairs", dropped, found)
    return CorpusDuplicates(exact, pairs, samples, found)


@dataclass(frozen=True)
class SemanticDuplicate:
    """A sample whose image embedding is within the threshold of its group's; ``similarity``: the
    highest among its pairs."""

    uid: str
    shard: int
    representative: str
    similarity: float
    distance: int  # of the pHashes, to the representative
    representative_shard: int


def find_semantic_duplicates(
    ctx: DedupContext, corpus: Any, count: int
) -> tuple[list[SemanticDuplicate], dict[str, Any]]:
    """SemDeDup on the score job's embeddings (:mod:`pipeline.dedup.semantic`): pairs in Spark,
    groups by connected components in Spark; only the samples to drop come back."""
    from pyspark.sql import functions as F

    o = ctx.options
    pairs, summary = semantic_pairs(
        ctx.executor, ctx.dataset, ctx.shards, count, o.semantic_threshold, o.semantic_clusters
    )
    stored = corpus.select("uid")
    pairs = pairs.join(stored.withColumnRenamed("uid", "a"), "a").join(
        stored.withColumnRenamed("uid", "b"), "b"
    )
    pairs = pairs.persist()
    try:
        summary["pairs"] = pairs.count()
        ranked = corpus.select("uid", "shard", "phash", "area")
        if o.semantic_keep == "score":
            ranked = by_score(ranked, clip_scores(ctx.executor, ctx.dataset, ctx.shards))
        dropped = duplicate_groups(pairs, ranked)
        best = pair_ends(pairs, "similarity").groupBy("uid").agg(F.max("similarity").alias("similarity"))
        kept_shard = corpus.selectExpr("uid AS representative", "shard AS kept_shard")
        rows = (
            dropped.join(best, "uid")
            .join(kept_shard, "representative")
            .select("uid", "shard", "representative", "similarity", "distance", "kept_shard")
            .collect()
        )
    finally:
        pairs.unpersist()
    found = sorted(
        (
            SemanticDuplicate(uid, int(shard), rep, float(sim), int(d), int(kept_shard))
            for uid, shard, rep, sim, d, kept_shard in rows
        ),
        key=lambda d: d.uid,
    )
    summary["samples"] = len(found)
    log.info("semantic duplicates: %d samples in %d pairs", len(found), summary["pairs"])
    return found, summary


# -- step 5 ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verified:
    """What survived the checks: the samples to drop, and the candidates the verifier rejected."""

    benchmark: dict[str, Checked]  # per sample, its closest accepted benchmark match
    rejected: dict[str, Checked]  # per sample with candidates but none accepted: the closest one
    # Per near duplicate to drop (a Spark DataFrame, or None without --within-corpus): uid, shard,
    # representative, distance, thumbnail_distance (its best verified pair's distance).
    near: Any
    counts: dict[str, int]


def verify(
    ctx: DedupContext, benchmark: Benchmark | None, candidates: list[Candidate], duplicates: CorpusDuplicates
) -> Verified:
    """Every hash candidate checked on the executors (the low-complexity rule and the thumbnails,
    :mod:`pipeline.dedup.checks`); only the pairs both accept are kept."""
    verifier = ctx.verifier
    checked: list[Checked] = []
    if benchmark is not None and candidates:
        checked = check_benchmark_candidates(
            ctx.executor, ctx.dataset, ctx.cache, benchmark.table, candidates, verifier
        )
    accepted = closest([c for c in checked if c.accepted])
    rejected = closest([c for c in checked if not c.accepted and c.uid not in accepted])
    near, near_rejected = verify_near(ctx, duplicates, verifier)
    counts = {
        "benchmark_candidates": len(checked),
        "benchmark_candidates_rejected_by_guard": sum(not c.guard for c in checked),
        "benchmark_candidates_rejected_by_thumbnail": sum(c.guard and not c.accepted for c in checked),
        "benchmark_samples_rejected": len(rejected),
        "near_duplicate_pairs_rejected": near_rejected,
    }
    return Verified(accepted, rejected, near, counts)


def verify_near(ctx: DedupContext, duplicates: CorpusDuplicates, verifier: Verifier) -> tuple[Any, int]:
    """The near duplicates to drop (a DataFrame, see :class:`Verified`) and the number of candidate
    pairs the verifier rejected: verdicts, groups and distances all computed in Spark."""
    if duplicates.near_pairs is None or not duplicates.near_pair_count:
        return None, 0
    from pyspark.sql import functions as F

    verdicts = check_near_pairs(
        ctx.executor, ctx.dataset, ctx.cache, duplicates.near_pairs, duplicates.near_samples, verifier
    ).localCheckpoint(eager=True)
    rejected = verdicts.where(~F.col("accepted")).count()
    groups = duplicate_groups(verdicts.where(F.col("accepted")), duplicates.near_samples)
    near = groups.join(best_thumbnail_distances(verdicts), "uid", "left")
    return near, rejected


# -- step 6 ------------------------------------------------------------------------------------


def match_rows(
    ctx: DedupContext,
    verified: Verified,
    bench_ids: list[str],
    exact: Any,
    semantic: list[SemanticDuplicate] | None = None,
) -> list[dict[str, Any]]:
    """One row per sample to drop, with its signals; a benchmark match wins over a within-corpus
    duplicate, then exact before near before semantic. ``exact``: the exact duplicates' DataFrame
    (or None); the within-corpus rows are collected here, one per sample to drop (what
    matches.parquet holds)."""
    o = ctx.options
    min_similarity = o.embedding_min_similarity if o.embeddings else None
    min_layout = o.layout_min_similarity if o.searches_layouts else None
    rows = [
        {
            "uid": uid,
            "reason": REASON_BENCHMARK,
            "match_id": bench_ids[c.benchmark_row],
            "distance": c.distance,
            "shard": c.shard,
            "matched_hash": _matched_hash(c),
            "phash_distance": c.phash_distance,
            "centre_distance": c.centre_distance,
            "thumbnail_distance": c.thumbnail_distance,
            "verified": c.verified,
            "signals": c.signals(o.max_distance, o.centre_max_distance, min_similarity, min_layout),
            "embedding_similarity": c.similarity,
            "layout_similarity": c.layout_similarity,
        }
        for uid, c in verified.benchmark.items()
    ]
    rows.extend(_exact_row(d) for d in _collect(exact) if d.uid not in verified.benchmark)
    rows.extend(_near_row(d) for d in _collect(verified.near) if d.uid not in verified.benchmark)
    listed = {r["uid"] for r in rows}
    rows.extend(_semantic_row(d) for d in semantic or [] if d.uid not in listed)
    return sorted(rows, key=lambda r: r["uid"])


def _collect(frame: Any) -> list[Any]:
    """The rows of a within-corpus DataFrame (none for None)."""
    return [] if frame is None else frame.collect()


def _corpus_row(
    d: Any,
    reason: str,
    phash_distance: int,
    signals: list[str],
    thumbnail: float | None = None,
    similarity: float | None = None,
) -> dict[str, Any]:
    """The matches.parquet row of a within-corpus duplicate ``d`` (uid, shard, representative,
    distance): the group's kept uid is its match, it has no benchmark hash, and it is verified
    exactly when its thumbnails were compared."""
    return {
        "uid": d.uid,
        "reason": reason,
        "match_id": d.representative,
        "distance": d.distance,
        "shard": d.shard,
        "matched_hash": None,
        "phash_distance": phash_distance,
        "centre_distance": None,
        "thumbnail_distance": thumbnail,
        "verified": None if thumbnail is None else True,
        "signals": signals,
        "embedding_similarity": similarity,
        "layout_similarity": None,
    }


def _exact_row(d: Any) -> dict[str, Any]:
    return _corpus_row(d, REASON_EXACT, 0, [SIGNAL_SHA256])


def _near_row(d: Any) -> dict[str, Any]:
    thumbnail = d.thumbnail_distance
    signals = [SIGNAL_PHASH] + ([SIGNAL_THUMBNAIL] if thumbnail is not None else [])
    return _corpus_row(d, REASON_NEAR, d.distance, signals, thumbnail)


def _semantic_row(d: SemanticDuplicate) -> dict[str, Any]:
    return _corpus_row(d, REASON_SEMANTIC, d.distance, [SIGNAL_EMBEDDING], similarity=d.similarity)


def _matched_hash(candidate: Candidate) -> str:
    if candidate.embedding:
        return "embedding"
    if candidate.layout:
        return "layout"
    if candidate.centre:
        return "phash_centre"
    return "phash_mirrored" if candidate.flipped else "phash"


def audit(
    ctx: DedupContext,
    sources: list[BenchmarkSource],
    verified: Verified,
    bench_ids: list[str],
    semantic: list[SemanticDuplicate] | None = None,
) -> dict[str, Any]:
    """Render the audit grid: the dropped pairs and the pairs the verifier rejected, each for the
    first ``--audit-limit`` benchmark images (by id), and the first ``--audit-limit`` semantic
    duplicate groups (by kept uid)."""

    def pairs(found: dict[str, Checked]) -> tuple[list[AuditMatch], int]:
        matches = [
            AuditMatch(
                bench_ids[c.benchmark_row],
                uid,
                c.distance,
                c.flipped,
                c.centre,
                c.phash_distance,
                c.centre_distance,
                c.thumbnail_distance,
                c.verified,
                c.similarity,
                c.embedding,
                c.layout_similarity,
                c.layout,
            )
            for uid, c in found.items()
        ]
        ids = sorted({m.benchmark_id for m in matches})
        shown = set(ids[: ctx.options.audit_limit])
        return [m for m in matches if m.benchmark_id in shown], len(ids)

    dropped, total = pairs(verified.benchmark)
    rejected, total_rejected = pairs(verified.rejected)
    by_source = {s.name: s for s in sources}
    bench_images = {}
    for bid in sorted({m.benchmark_id for m in dropped + rejected}):
        name, _, member = bid.partition("/")
        source = by_source.get(name)
        bench_images[bid] = image_bytes(source, member) if source is not None else None
    shard_of = {uid: c.shard for found in (verified.benchmark, verified.rejected) for uid, c in found.items()}
    by_shard: dict[int, list[str]] = {}
    for m in dropped + rejected:
        by_shard.setdefault(shard_of[m.uid], []).append(m.uid)
    corpus_images: dict[str, bytes] = {}
    for shard, uids in by_shard.items():
        corpus_images.update(shard_images(ctx.dataset, shard, ctx.image.extension, uids))
    semantic_audit = semantic_pairs_shown(ctx, semantic) if semantic else None
    path = write_audit(
        ctx.dataset, dropped, bench_images, corpus_images, total, rejected, total_rejected, semantic_audit
    )
    shown = len({m.benchmark_id for m in dropped})
    log.info(
        "audit grid of %d benchmark images (and %d with rejected candidates): %s", shown, total_rejected, path
    )
    return {
        "index": path,
        "benchmark_images_shown": shown,
        "rejected_benchmark_images_shown": len({m.benchmark_id for m in rejected}),
    }


def semantic_pairs_shown(ctx: DedupContext, semantic: list[SemanticDuplicate]) -> SemanticAudit:
    """The semantic duplicate groups the audit shows (the first ``--audit-limit`` kept uids) with
    the stored images of both sides."""
    kept = sorted({d.representative for d in semantic})
    shown = set(kept[: ctx.options.audit_limit])
    members = [d for d in semantic if d.representative in shown]
    pairs = [
        AuditMatch(
            d.representative,
            d.uid,
            d.distance,
            False,
            phash_distance=d.distance,
            similarity=d.similarity,
            embedding=True,
        )
        for d in members
    ]
    by_shard: dict[int, set[str]] = {}
    for d in members:
        by_shard.setdefault(d.shard, set()).add(d.uid)
        by_shard.setdefault(d.representative_shard, set()).add(d.representative)
    images: dict[str, bytes] = {}
    for shard, uids in sorted(by_shard.items()):
        images.update(shard_images(ctx.dataset, shard, ctx.image.extension, uids))
    return SemanticAudit(pairs, images, len(kept), len(semantic))


def format_summary(summary: dict[str, Any]) -> str:
    """A human-readable report of what the dedup job found."""
    reasons = summary["by_reason"]
    lines = [
        "dedup summary",
        f"  corpus samples              {summary['corpus_samples']:>10}  ({summary['shards']} shards)",
    ]
    if "benchmark" in summary:
        bench = summary["benchmark"]
        by_hash = summary.get("benchmark_matches_by_hash", {})
        lines.append(
            f"  benchmark images            {bench['benchmark_images']:>10}  "
            f"({'reused saved hashes' if bench['reused'] else 'hashed'}, {len(bench['skipped'])} skipped, "
            f"{bench['execution']})"
        )
        lines.append(
            f"  benchmark duplicates        {reasons[REASON_BENCHMARK]:>10}  "
            f"(of {summary['benchmark_images_matched']} benchmark images; "
            f"{by_hash.get('phash_centre', 0)} by centre hash"
            + (f", {by_hash.get('embedding', 0)} by embeddings only" if "embeddings" in bench else "")
            + (f", {by_hash.get('layout', 0)} by layouts only" if "layout" in bench else "")
            + ")"
        )
        lines.append(
            f"  candidates not confirmed    {summary['benchmark_samples_rejected']:>10}  "
            f"(samples kept; of {summary['benchmark_candidates']} candidate pairs "
            f"{summary['benchmark_candidates_rejected_by_thumbnail']} rejected by the thumbnails, "
            f"{summary['benchmark_candidates_rejected_by_guard']} by the low-complexity rule)"
        )
    if "embeddings" in summary.get("benchmark", {}):
        emb = summary["benchmark"]["embeddings"]
        lines.append(
            f"  embedding candidates        {emb['candidates_not_found_by_hashes']:>10}  "
            f"(not found by the hashes; {emb['model']}, {emb['benchmark_images_embedded']} benchmark images "
            f"{'reused' if emb['reused'] else 'embedded'})"
        )
    if "layout" in summary.get("benchmark", {}):
        lay = summary["benchmark"]["layout"]
        lines.append(
            f"  layout candidates           {lay['candidates_not_found_before']:>10}  "
            f"(not found by the hashes or embeddings; {lay['benchmark_images_searched']} drawn benchmark "
            "images searched)"
        )
    lines += [
        f"  exact duplicates            {reasons[REASON_EXACT]:>10}",
        f"  near duplicates             {reasons[REASON_NEAR]:>10}  "
        f"({summary['near_duplicate_pairs_rejected']} of {summary['near_duplicate_pairs']} pairs "
        "not confirmed)",
    ]
    if "semantic" in summary:
        sem = summary["semantic"]
        lines.append(
            f"  semantic duplicates         {reasons[REASON_SEMANTIC]:>10}  "
            f"({sem.get('pairs', 0)} pairs in {sem['clusters']} clusters)"
        )
    lines += [
        f"  samples to drop             {summary['matches']:>10}  (dedup/matches.parquet)",
    ]
    if "audit" in summary:
        lines.append(f"  audit grid                  {summary['audit']['index']}")
    lines.append(f"  time                        {summary['seconds']:>10.1f} s")
    return "\n".join(lines)
