"""``run(spark, options)``: the dedup job.

1. Hash the benchmark images (or reuse ``dedup/benchmark_hashes.parquet``).
2. Find every corpus sample within ``--max-distance`` of a benchmark hash (exact search), and
   within ``--centre-max-distance`` of a benchmark centre hash (pipeline.dedup.centre).
3. Within the corpus: exact duplicates by sha256, then near-duplicates by pHash.
4. Apply the low-complexity rule to every pHash candidate (reads only those images).
5. Write ``dedup/matches.parquet`` (one row per sample to drop), the audit grid and a summary.

The job is one global pass: its outputs are written under temporary names and renamed into
place at the end, so a killed run leaves the previous outputs intact and a rerun redoes the pass
(benchmark hashes are reused when their sources have not changed).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa

from pipeline.dataset import Dataset
from pipeline.dedup.audit import AuditMatch, write_audit
from pipeline.dedup.benchmark_hashes import DEDUP_DIR, benchmark_hashes
from pipeline.dedup.benchmark_matches import (
    BenchmarkQuery,
    Candidate,
    CorpusHashes,
    closest,
    search_benchmarks,
)
from pipeline.dedup.benchmark_sources import BenchmarkSource, image_bytes, resolve_sources
from pipeline.dedup.centre import CENTRE_DIR, shard_centre_hashes, shard_centre_rows
from pipeline.dedup.corpus import image_features, shard_images, shard_rows
from pipeline.dedup.guard import UNKNOWN, ComplexityGuard, ImageFeatures
from pipeline.dedup.options import DedupOptions
from pipeline.dedup.within_corpus import (
    Duplicate,
    exact_duplicates,
    near_duplicate_groups,
    near_duplicate_pairs,
)
from pipeline.download.job import OPTIONS_FILE
from pipeline.errors import UserInputError
from pipeline.image.options import ImageOptions, image_options_from_record
from pipeline.shards.raw_writer import RAW_DIR, complete_shards
from pipeline.spark_progress import run_with_progress
from schemas.dedup import MATCHES_SCHEMA, REASON_BENCHMARK, REASON_EXACT, REASON_NEAR

log = logging.getLogger(__name__)

MATCHES_FILE = "matches.parquet"
SUMMARY_FILE = "_summary.json"


def check_inputs(options: DedupOptions) -> None:
    """Fail before Spark starts: no raw shards, or a --benchmark path that cannot be used."""
    dataset = Dataset(options.dataset)
    if not complete_shards(dataset):
        raise UserInputError(
            f"{dataset.path(RAW_DIR)} has no complete raw shards: run jobs/download.py first"
        )
    resolve_sources(options.benchmarks)


def stored_image_options(dataset: Dataset) -> ImageOptions:
    """The image options the corpus was downloaded with (benchmark images get the same)."""
    if not dataset.exists(RAW_DIR, OPTIONS_FILE):
        log.warning(
            "%s is missing: hashing benchmark images with the default image options",
            dataset.path(RAW_DIR, OPTIONS_FILE),
        )
        return ImageOptions()
    return image_options_from_record(dataset.read_json(RAW_DIR, OPTIONS_FILE)["image"])


_HASH_ROWS_SCHEMA = "uid string, shard int, phash long"


def _corpus_frame(spark: Any, dataset_url: str, shards: list[int]) -> Any:
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
    rows = spark.sparkContext.parallelize(shards, max(1, len(shards))).flatMap(
        lambda shard: shard_rows(dataset_url, shard)
    )
    return spark.createDataFrame(rows, schema)


def _centre_corpus(
    spark: Any, dataset_url: str, shards: list[int], count: int, image: ImageOptions
) -> CorpusHashes:
    """The corpus centre hashes: computed (or reused) per raw shard inside the search tasks."""
    read = partial(shard_centre_hashes, image_ext=image.extension, border=image.border_color)
    ext, border = image.extension, image.border_color
    rows = spark.sparkContext.parallelize(shards, max(1, len(shards))).flatMap(
        lambda shard: shard_centre_rows(dataset_url, shard, ext, border)
    )
    return CorpusHashes(dataset_url, shards, spark.createDataFrame(rows, _HASH_ROWS_SCHEMA), count, read)


def _features(
    spark: Any, dataset_url: str, image: ImageOptions, wanted: dict[str, int]
) -> dict[str, ImageFeatures]:
    """Complexity and colour signature of the corpus samples named in ``wanted`` (uid -> shard)."""
    by_shard: dict[int, list[str]] = {}
    for uid, shard in wanted.items():
        by_shard.setdefault(shard, []).append(uid)
    items = [
        (dataset_url, shard, image.extension, image.border_color, tuple(sorted(uids)))
        for shard, uids in sorted(by_shard.items())
    ]
    results = run_with_progress(
        spark, items, image_features, "corpusforge-dedup-guard", "checking candidates"
    )
    return {uid: ImageFeatures.from_bytes(c, sig) for r in results for uid, (c, sig) in r["features"].items()}


def run(spark: Any, options: DedupOptions) -> dict[str, Any]:
    """Find benchmark duplicates and within-corpus duplicates; write matches, audit, summary."""
    started = time.time()
    dataset = Dataset(options.dataset)
    shards = complete_shards(dataset)
    image = stored_image_options(dataset)
    guard = ComplexityGuard(options.min_complexity, options.max_signature_distance)
    dataset.makedirs(DEDUP_DIR)
    dataset.remove_temporaries(DEDUP_DIR)
    dataset.remove_temporaries(DEDUP_DIR, CENTRE_DIR)  # no task runs yet: these are a dead run's
    summary: dict[str, Any] = {"shards": len(shards), "options": _options_record(options)}

    corpus = _corpus_frame(spark, dataset.url, shards).persist()
    try:
        corpus_count = corpus.count()
        summary["corpus_samples"] = corpus_count
        log.info("%d stored samples in %d raw shards", corpus_count, len(shards))

        sources = resolve_sources(options.benchmarks)
        candidates: list[Candidate] = []
        bench_table = None
        if sources:
            bench_table, hashing = benchmark_hashes(
                spark, dataset, sources, image, options.skip_bad_benchmark_images, options.rehash_benchmarks
            )
            summary["benchmark"] = hashing
            phash = np.array(bench_table.column("phash").to_pylist(), dtype=np.int64)
            flipped = (
                np.array(bench_table.column("phash_flipped").to_pylist(), dtype=object)
                if options.flip_invariant
                else None
            )
            whole = CorpusHashes(dataset.url, shards, corpus, corpus_count)
            candidates, execution = search_benchmarks(
                spark,
                whole,
                BenchmarkQuery.whole(phash, flipped, options.max_distance),
                options.broadcast_limit_mb,
            )
            summary["benchmark"]["execution"] = execution
            summary["benchmark"]["candidates"] = len(candidates)
            if options.centre_max_distance >= 0:
                centre_query = BenchmarkQuery.centre_of(
                    bench_table.column("phash_centre").to_pylist(), options.centre_max_distance
                )
                centre_candidates, centre_execution = search_benchmarks(
                    spark,
                    _centre_corpus(spark, dataset.url, shards, corpus_count, image),
                    centre_query,
                    options.broadcast_limit_mb,
                )
                candidates += centre_candidates
                summary["benchmark"]["centre_execution"] = centre_execution
                summary["benchmark"]["centre_candidates"] = len(centre_candidates)
                summary["benchmark"]["images_without_centre_hash"] = bench_table.num_rows - len(
                    centre_query.hashes
                )

        exact: list[Duplicate] = []
        near_pairs: list[tuple[str, str, int]] = []
        near_samples: dict = {}
        if options.within_corpus:
            exact = exact_duplicates(corpus)
            dropped_exact = {d.uid for d in exact}
            remaining = corpus
            if dropped_exact:
                # An anti-join, not isin(): the list of exact duplicates can be millions long.
                dropped_frame = spark.createDataFrame([(uid,) for uid in sorted(dropped_exact)], "uid string")
                remaining = corpus.join(dropped_frame, "uid", "left_anti")
            near_pairs, near_samples = near_duplicate_pairs(
                remaining, corpus_count - len(dropped_exact), options.near_duplicate_distance
            )
    finally:
        corpus.unpersist()

    # The low-complexity rule needs the images of every pHash candidate (and only those).
    wanted = {c.uid: c.shard for c in candidates}
    wanted.update({s.uid: s.shard for s in near_samples.values()})
    features = _features(spark, dataset.url, image, wanted) if wanted else {}

    bench_features: list[ImageFeatures] = []
    bench_ids: list[str] = []
    if bench_table is not None:
        bench_ids = bench_table.column("benchmark_id").to_pylist()
        bench_features = [
            ImageFeatures.from_bytes(c, s)
            for c, s in zip(
                bench_table.column("complexity").to_pylist(),
                bench_table.column("colour_signature").to_pylist(),
                strict=True,
            )
        ]
    accepted = [
        c
        for c in candidates
        if guard.accepts(
            features.get(c.uid, UNKNOWN),
            bench_features[c.benchmark_row].mirrored() if c.flipped else bench_features[c.benchmark_row],
        )
    ]
    benchmark_best = closest(accepted)
    near = near_duplicate_groups(
        near_pairs,
        near_samples,
        lambda a, b: guard.accepts(features.get(a, UNKNOWN), features.get(b, UNKNOWN)),
    )

    rows = _match_rows(benchmark_best, bench_ids, exact, near)
    _write_matches(dataset, rows)
    reasons = Counter(r["reason"] for r in rows)
    summary.update(
        {
            "benchmark_candidates_rejected_by_guard": len(candidates) - len(accepted),
            "near_duplicate_pairs": len(near_pairs),
            "matches": len(rows),
            "by_reason": {
                reason: reasons.get(reason, 0) for reason in (REASON_BENCHMARK, REASON_EXACT, REASON_NEAR)
            },
            "benchmark_images_matched": len({c.benchmark_row for c in benchmark_best.values()}),
            "benchmark_matches_by_hash": dict(
                sorted(Counter(_matched_hash(c) for c in benchmark_best.values()).items())
            ),
        }
    )
    if options.audit_limit and benchmark_best:
        summary["audit"] = _audit(
            dataset, sources, benchmark_best, bench_ids, image.extension, options.audit_limit
        )
    summary["seconds"] = round(time.time() - started, 2)
    dataset.write_json_atomic(summary, DEDUP_DIR, SUMMARY_FILE)
    return summary


def _options_record(options: DedupOptions) -> dict[str, Any]:
    from dataclasses import asdict

    record = asdict(options)
    record["benchmarks"] = list(options.benchmarks)
    return record


def _match_rows(
    benchmark_best: dict[str, Candidate], bench_ids: list[str], exact: list[Duplicate], near: list[Duplicate]
) -> list[dict[str, Any]]:
    """One row per sample to drop; a benchmark match wins over a within-corpus duplicate."""
    rows = [
        {
            "uid": uid,
            "reason": REASON_BENCHMARK,
            "match_id": bench_ids[c.benchmark_row],
            "distance": c.distance,
            "shard": c.shard,
            "matched_hash": _matched_hash(c),
        }
        for uid, c in benchmark_best.items()
    ]
    for reason, duplicates in ((REASON_EXACT, exact), (REASON_NEAR, near)):
        rows.extend(
            {
                "uid": d.uid,
                "reason": reason,
                "match_id": d.representative,
                "distance": d.distance,
                "shard": d.shard,
                "matched_hash": None,
            }
            for d in duplicates
            if d.uid not in benchmark_best
        )
    return sorted(rows, key=lambda r: r["uid"])


def _matched_hash(candidate: Candidate) -> str:
    if candidate.centre:
        return "phash_centre"
    return "phash_mirrored" if candidate.flipped else "phash"


def _write_matches(dataset: Dataset, rows: list[dict[str, Any]]) -> None:
    dataset.write_parquet_atomic(pa.Table.from_pylist(rows, schema=MATCHES_SCHEMA), DEDUP_DIR, MATCHES_FILE)


def _audit(
    dataset: Dataset,
    sources: list[BenchmarkSource],
    benchmark_best: dict[str, Candidate],
    bench_ids: list[str],
    image_ext: str,
    limit: int,
) -> dict[str, Any]:
    """Render the audit grid for the first ``limit`` matched benchmark images (by id)."""
    matches = [
        AuditMatch(bench_ids[c.benchmark_row], uid, c.distance, c.flipped, c.centre)
        for uid, c in benchmark_best.items()
    ]
    matched_ids = sorted({m.benchmark_id for m in matches})
    shown_ids = set(matched_ids[:limit])
    shown = [m for m in matches if m.benchmark_id in shown_ids]
    by_source = {s.name: s for s in sources}
    bench_images = {}
    for bid in shown_ids:
        name, _, member = bid.partition("/")
        source = by_source.get(name)
        bench_images[bid] = image_bytes(source, member) if source is not None else None
    corpus_images: dict[str, bytes] = {}
    by_shard: dict[int, list[str]] = {}
    for m in shown:
        by_shard.setdefault(benchmark_best[m.uid].shard, []).append(m.uid)
    for shard, uids in by_shard.items():
        corpus_images.update(shard_images(dataset.url, shard, image_ext, uids))
    path = write_audit(dataset, shown, bench_images, corpus_images, len(matched_ids))
    log.info("audit grid of %d benchmark images: %s", len(shown_ids), path)
    return {"index": path, "benchmark_images_shown": len(shown_ids)}


def format_summary(summary: dict[str, Any]) -> str:
    """A human-readable report of what the dedup job found."""
    reasons = summary["by_reason"]
    lines = [
        "dedup summary",
        f"  corpus samples              {summary['corpus_samples']:>10}  ({summary['shards']} shards)",
    ]
    if "benchmark" in summary:
        bench = summary["benchmark"]
        lines.append(
            f"  benchmark images            {bench['benchmark_images']:>10}  "
            f"({'reused saved hashes' if bench['reused'] else 'hashed'}, {len(bench['skipped'])} skipped, "
            f"{bench['execution']})"
        )
        lines.append(
            f"  benchmark duplicates        {reasons[REASON_BENCHMARK]:>10}  "
            f"(of {summary['benchmark_images_matched']} benchmark images; "
            f"{summary.get('benchmark_matches_by_hash', {}).get('phash_centre', 0)} by centre hash; "
            f"{summary['benchmark_candidates_rejected_by_guard']} rejected by the low-complexity rule)"
        )
    lines += [
        f"  exact duplicates            {reasons[REASON_EXACT]:>10}",
        f"  near duplicates             {reasons[REASON_NEAR]:>10}",
        f"  samples to drop             {summary['matches']:>10}  (dedup/matches.parquet)",
    ]
    if "audit" in summary:
        lines.append(f"  audit grid                  {summary['audit']['index']}")
    lines.append(f"  time                        {summary['seconds']:>10.1f} s")
    return "\n".join(lines)
