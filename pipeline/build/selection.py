"""The selection as Spark DataFrames: candidates, dedup matches, drop reasons, shard positions.

Every rule is a column expression (the uid lists of --include-uids / --exclude-uids are joined on
uid, as the dedup matches are); the first failing rule (in ``schemas.selection.DROP_REASONS``
order) names the drop reason. The top fraction is decided over all scored samples with ties
broken by uid, and kept samples are ordered by their seeded shuffle key: both with distributed
sorts, never by collecting samples on the driver.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from pipeline.build.candidates import CANDIDATE_COLUMNS, shard_candidates
from pipeline.build.inputs import BuildInputs
from pipeline.build.options import BuildOptions
from pipeline.dataset import Dataset
from pipeline.executor import SparkExecutor
from schemas import selection as sel
from schemas.dedup import REASON_BENCHMARK, REASON_EXACT, REASON_NEAR, REASON_SEMANTIC

ROWS_PER_PARTITION = 100_000
UIDS_PER_TASK = 1_000_000  # uid list rows per Spark task that turns them into a DataFrame


@dataclass(frozen=True)
class Boundary:
    """The last sample kept by --top-fraction, in (clip_score desc, uid asc) order."""

    clip_score: float
    uid: str
    keep: int  # how many scored samples the fraction keeps
    scored: int  # over how many scored samples


def candidate_schema() -> Any:
    """The Spark schema of the candidate rows (``CANDIDATE_COLUMNS``)."""
    from pyspark.sql import types as T

    types = {
        "uid": T.StringType(),
        "raw_shard": T.IntegerType(),
        "row_index": T.LongType(),
        "clip_score": T.DoubleType(),
        "caption_length": T.IntegerType(),
        "original_width": T.IntegerType(),
        "original_height": T.IntegerType(),
        "sort_key": T.LongType(),
        "offset": T.LongType(),
        "length": T.LongType(),
        "members": T.StringType(),
        "language": T.StringType(),
        "caption_words": T.IntegerType(),
        "symbol_share": T.DoubleType(),
        "file_name": T.BooleanType(),
        "repeated_run": T.IntegerType(),
        "has_url": T.BooleanType(),
        "caption_key": T.LongType(),
    }
    nullable = {"clip_score", "language", "caption_key"}
    return T.StructType(
        [T.StructField(name, types[name], name in nullable) for name in CANDIDATE_COLUMNS]
    )


def candidates_frame(executor: SparkExecutor, options: BuildOptions, inputs: BuildInputs) -> Any:
    """One row per downloaded sample of every raw shard (one Spark task per raw shard)."""
    dataset, seed, scored = Dataset(options.dataset), options.seed, frozenset(inputs.scored_shards)
    rdd = executor.flat_map(
        inputs.raw_shards, lambda shard: shard_candidates(dataset, shard, seed, shard in scored)
    )
    return executor.spark.createDataFrame(rdd, candidate_schema())


def uid_frame(executor: SparkExecutor, uids: Any) -> Any:
    """A DataFrame (uid) of a uid list (a sorted ``S32`` numpy array, see pipeline.build.uid_lists).

    The driver only slices the array: its chunks travel to the tasks as numpy buffers and the tasks
    make the rows, so a 10M-uid list costs no Python object per uid on the driver.
    """
    from pyspark.sql import types as T

    chunks = [uids[i : i + UIDS_PER_TASK] for i in range(0, len(uids), UIDS_PER_TASK)]
    rdd = executor.flat_map(chunks, lambda chunk: ((uid.decode("ascii"),) for uid in chunk.tolist()))
    return executor.spark.createDataFrame(rdd, T.StructType([T.StructField("uid", T.StringType(), False)]))


def with_subset(candidates: Any, include: Any | None, exclude: Any | None) -> Any:
    """Add ``subset_reason``: not listed by --include-uids, or listed by --exclude-uids (else null).

    Joins on uid; Spark broadcasts a list small enough, and shuffles both sides of a large one.
    """
    from pyspark.sql import functions as F

    frame = candidates
    reason = F.lit(None).cast("string")
    if exclude is not None:
        frame = frame.join(exclude.withColumn("_excluded", F.lit(True)), "uid", "left")
        reason = F.when(F.col("_excluded"), F.lit(sel.REASON_EXCLUDED)).otherwise(reason)
    if include is not None:
        frame = frame.join(include.withColumn("_included", F.lit(True)), "uid", "left")
        reason = F.when(F.col("_included").isNull(), F.lit(sel.REASON_NOT_INCLUDED)).otherwise(reason)
    return frame.withColumn("subset_reason", reason).drop("_excluded", "_included")


def unknown_uids(listed: Any, candidates: Any, examples: int = 5) -> tuple[int, list[str]]:
    """How many uids of a list name no downloaded sample, and a few of them (sorted)."""
    unknown = listed.join(candidates.select("uid"), "uid", "left_anti")
    count = unknown.count()
    shown = [row["uid"] for row in unknown.orderBy("uid").limit(examples).collect()] if count else []
    return count, shown


def matches_frame(executor: SparkExecutor, dataset: Dataset, inputs: BuildInputs) -> Any | None:
    """dedup/matches.parquet as (uid, dedup_reason, match_id), one row per uid; None without dedup."""
    if not inputs.has_matches or inputs.matches_row_groups == 0:
        return None
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    def read_group(group: int) -> list[tuple[str, str, str]]:
        table = dataset.dedup.matches.read_row_group(group, columns=["uid", "reason", "match_id"])
        return list(zip(*(table.column(c).to_pylist() for c in ("uid", "reason", "match_id")), strict=True))

    schema = T.StructType(
        [T.StructField(name, T.StringType(), False) for name in ("uid", "dedup_reason", "match_id")]
    )
    groups = executor.flat_map(range(inputs.matches_row_groups), read_group)
    frame = executor.spark.createDataFrame(groups, schema)
    # The contract says one row per uid; if a file breaks it, a benchmark match still wins.
    priority = F.when(F.col("dedup_reason") == REASON_BENCHMARK, 0).otherwise(1)
    first = F.min(F.struct(priority.alias("p"), F.col("dedup_reason"), F.col("match_id")))
    return (
        frame.groupBy("uid")
        .agg(first.alias("m"))
        .select("uid", F.col("m.dedup_reason").alias("dedup_reason"), F.col("m.match_id").alias("match_id"))
    )


def probe_column(name: str) -> str:
    """The candidates' column holding probe ``name``'s score (issue 18, part C)."""
    return f"probe__{name}"


def with_probes(
    executor: SparkExecutor, candidates: Any, dataset: Dataset, inputs: BuildInputs, names: Any
) -> Any:
    """``candidates`` with one ``probe__NAME`` column per named probe (scores/probes/, joined on uid)."""
    from pyspark.sql import types as T

    wanted = tuple(names)

    def read(shard: int) -> list[tuple]:
        table = dataset.scores.shard(shard).probes_file.read().to_pylist()
        scores: dict[str, dict[str, float]] = {}
        for row in table:
            if row["probe"] in wanted:
                scores.setdefault(row["uid"], {})[row["probe"]] = row["score"]
        return [(uid, *(values.get(n) for n in wanted)) for uid, values in scores.items()]

    schema = T.StructType(
        [T.StructField("uid", T.StringType(), False)]
        + [T.StructField(probe_column(n), T.DoubleType(), True) for n in wanted]
    )
    frame = executor.spark.createDataFrame(executor.flat_map(inputs.raw_shards, read), schema)
    return candidates.join(frame, "uid", "left")


def _probe_rules(options: BuildOptions) -> tuple[Any, Any]:
    """(any probe score missing, name of the first failing probe rule or null), as columns."""
    from pyspark.sql import functions as F

    missing = F.lit(False)
    for name in options.probe_names:
        missing = missing | F.col(probe_column(name)).isNull()
    failed = F.lit(None).cast("string")
    checks = [(n, F.col(probe_column(n)) > F.lit(x)) for n, x in options.probe_max]
    checks += [(n, F.col(probe_column(n)) < F.lit(x)) for n, x in options.probe_min]
    for name, condition in reversed(checks):
        failed = F.when(condition, F.lit(name)).otherwise(failed)
    return missing, failed


def keep_count(fraction: float, scored: int) -> int:
    """How many of ``scored`` samples the top ``fraction`` keeps: ceil(F x N), in exact arithmetic."""
    return math.ceil(Fraction(repr(fraction)) * scored)


def partitions_for(rows: int) -> int:
    """Partitions for the sorts of ``rows`` metadata rows (~100 bytes each): one per 100,000 rows.

    Spark's default (``spark.sql.shuffle.partitions``, 200) would give a small corpus 200 tiny
    Python tasks per stage, a large one too few.
    """
    return max(1, math.ceil(rows / ROWS_PER_PARTITION))


def top_fraction_boundary(candidates: Any, fraction: float, partitions: int) -> Boundary | None:
    """The last kept sample of the top ``fraction``; None when the fraction keeps every scored sample.

    Ranked among the scored samples of the subset (``subset_reason`` null): the uid lists choose
    the pool, the fraction is taken of that pool.
    """
    scored = candidates.where("clip_score IS NOT NULL AND subset_reason IS NULL").select("clip_score", "uid")
    total = scored.count()
    keep = keep_count(fraction, total)
    if keep >= total:
        return None
    ranked = scored.rdd.map(tuple).sortBy(lambda r: (-r[0], r[1]), numPartitions=partitions).zipWithIndex()
    # collect(), not first(): first() may scan the partitions in several jobs.
    [((score, uid), _)] = ranked.filter(lambda pair: pair[1] == keep - 1).collect()
    return Boundary(clip_score=score, uid=uid, keep=keep, scored=total)


def with_reasons(
    candidates: Any, matches: Any | None, options: BuildOptions, boundary: Boundary | None
) -> Any:
    """Add ``reason`` (null = kept) and ``match_id``: the first failing rule of the documented order."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    frame = candidates
    if matches is not None:
        frame = frame.join(matches, "uid", "left")
    else:
        frame = frame.withColumn("dedup_reason", F.lit(None).cast("string")).withColumn(
            "match_id", F.lit(None).cast("string")
        )
    # A uid listed twice would make two identical keys in the corpus: keep its first row only.
    first_row = Window.partitionBy("uid").orderBy("raw_shard", "row_index")
    frame = frame.withColumn("_occurrence", F.row_number().over(first_row))
    dedup = F.col("dedup_reason")
    shorter = F.least("original_width", "original_height")
    longer = F.greatest("original_width", "original_height")
    score = F.col("clip_score")
    subset = F.col("subset_reason")
    rules: list[tuple[Any, str]] = [
        (F.col("_occurrence") > 1, sel.REASON_REPEATED_UID),
        (dedup == REASON_BENCHMARK, sel.REASON_BENCHMARK),
        (subset == sel.REASON_NOT_INCLUDED, sel.REASON_NOT_INCLUDED),
        (subset == sel.REASON_EXCLUDED, sel.REASON_EXCLUDED),
    ]
    if options.min_caption_length > 0:
        rules.append((F.col("caption_length") < options.min_caption_length, sel.REASON_CAPTION))
    frame, caption_rules = _caption_rules(frame, options)
    rules += caption_rules
    if options.min_image_size > 0:
        rules.append((shorter < options.min_image_size, sel.REASON_IMAGE_SIZE))
    if not math.isinf(options.max_aspect_ratio):
        # Multiplied, not divided: Spark's ANSI mode fails a division by zero.
        rules.append((longer > F.lit(options.max_aspect_ratio) * shorter, sel.REASON_ASPECT))
    if not options.keep_corpus_duplicates:
        rules += [
            (dedup == REASON_EXACT, sel.REASON_EXACT),
            (dedup == REASON_NEAR, sel.REASON_NEAR),
            (dedup == REASON_SEMANTIC, sel.REASON_SEMANTIC),
        ]
    if options.score_filter:
        rules.append((score.isNull(), sel.REASON_UNSCORED))
    if options.min_clip_score is not None:
        rules.append((score < F.lit(options.min_clip_score), sel.REASON_LOW_SCORE))
    if boundary is not None:
        inside = (score > F.lit(boundary.clip_score)) | (
            (score == F.lit(boundary.clip_score)) & (F.col("uid") <= F.lit(boundary.uid))
        )
        rules.append((~inside, sel.REASON_TOP_FRACTION))
    probe_failed = F.lit(None).cast("string")
    if options.probe_names:  # issue 18, part C
        probe_missing, probe_failed = _probe_rules(options)
        rules.append((probe_missing, sel.REASON_UNSCORED))
        rules.append((probe_failed.isNotNull(), sel.REASON_PROBE))
    reason = F.lit(None).cast("string")
    for condition, name in reversed(rules):
        reason = F.when(condition, F.lit(name)).otherwise(reason)
    match_id = F.when(reason == sel.REASON_PROBE, probe_failed).when(
        F.col("dedup_reason") == reason, F.col("match_id")
    )
    return (
        frame.withColumn("reason", reason)
        .withColumn("match_id", match_id)
        .drop("_occurrence", "dedup_reason", "subset_reason", "_caption_repeats")
    )


def _caption_rules(frame: Any, options: BuildOptions) -> tuple[Any, list[tuple[Any, str]]]:
    """The caption rules of issue 18 that are on, in ``CAPTION_RULE_REASONS`` order.

    The boilerplate rule counts each caption (``caption_key``) over every downloaded sample with a
    window over the key: one shuffle of 8-byte keys, never the captions themselves.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    rules: list[tuple[Any, str]] = []
    if options.min_caption_words > 0:
        rules.append((F.col("caption_words") < options.min_caption_words, sel.REASON_CAPTION_WORDS))
    if options.drop_file_names:
        rules.append((F.col("file_name"), sel.REASON_FILE_NAME))
    if options.drop_urls:
        rules.append((F.col("has_url"), sel.REASON_URL))
    if options.max_repeated_chars > 0:
        rules.append((F.col("repeated_run") > options.max_repeated_chars, sel.REASON_REPEATED_CHARS))
    if options.max_symbol_share < 1.0:
        rules.append((F.col("symbol_share") > F.lit(options.max_symbol_share), sel.REASON_SYMBOLS))
    if options.max_caption_repeats > 0:
        key = F.col("caption_key")
        repeats = F.when(key.isNotNull(), F.count(F.lit(1)).over(Window.partitionBy(key)))
        frame = frame.withColumn("_caption_repeats", repeats)
        rules.append((F.col("_caption_repeats") > options.max_caption_repeats, sel.REASON_BOILERPLATE))
    if options.languages is not None:
        # A sample without a language (not in scores/) is not one of the wanted languages.
        language = F.coalesce(F.col("language"), F.lit(""))
        rules.append((~language.isin(list(options.languages)), sel.REASON_LANGUAGE))
    return frame, rules


def language_counts(reasoned: Any) -> dict[str, dict[str, int]]:
    """Per caption language (``"unscored"`` without scores): samples and kept samples, most first."""
    from pyspark.sql import functions as F

    rows = (
        reasoned.groupBy(F.coalesce(F.col("language"), F.lit("unscored")).alias("language"))
        .agg(F.count(F.lit(1)).alias("samples"), F.count(F.when(F.col("reason").isNull(), 1)).alias("kept"))
        .collect()
    )
    ordered = sorted(rows, key=lambda row: (-row["samples"], row["language"]))
    return {row["language"]: {"samples": row["samples"], "kept": row["kept"]} for row in ordered}


def reason_counts(reasoned: Any) -> dict[str | None, int]:
    """Samples per reason (None: kept)."""
    return {row["reason"]: row["count"] for row in reasoned.groupBy("reason").count().collect()}


def probe_drop_counts(reasoned: Any) -> dict[str, int]:
    """Samples dropped by each probe's rule (its name in ``match_id``), sorted by name."""
    rows = reasoned.where(f"reason = '{sel.REASON_PROBE}'").groupBy("match_id").count().collect()
    return {row["match_id"]: row["count"] for row in sorted(rows, key=lambda r: r["match_id"])}


def positioned(reasoned: Any, samples_per_shard: int, partitions: int) -> Any:
    """Kept samples as an RDD of ``(final_shard, position, row)`` in shuffle order.

    The global sort on ``(sort_key, uid)`` is a total order, so positions do not depend on how
    Spark partitions the data.
    """
    kept = reasoned.where("reason IS NULL").select(
        "sort_key", "uid", "raw_shard", "offset", "length", "members", "clip_score"
    )
    ordered = kept.rdd.map(tuple).sortBy(lambda r: (r[0], r[1]), numPartitions=partitions).zipWithIndex()
    return ordered.map(lambda pair: (pair[1] // samples_per_shard, pair[1] % samples_per_shard, pair[0][1:]))
