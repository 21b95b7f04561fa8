"""Duplicates inside the corpus: exact (same downloaded bytes) and near (pHash within a distance).

Groups are connected components of the "is a duplicate of" relation (single linkage: if A
matches B and B matches C, all three form one group even when A and C are further apart). One
representative per group is kept, chosen deterministically: the sample with the largest
original image (width x height), ties broken by the smallest uid. Every other member is
reported with the representative's uid as its group id.

Everything here is a Spark DataFrame in and out: the driver holds no pair, group or member.
Exact groups are a window over sha256; near-duplicate groups are the connected components of the
confirmed pairs (:func:`pipeline.dedup.components.connected_groups`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.dedup.components import connected_groups
from pipeline.dedup.spark_join import hamming_join, join_plan

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def exact_duplicates(corpus: DataFrame) -> DataFrame:
    """Samples whose downloaded bytes (sha256) equal those of a kept sample.

    ``corpus``: uid, shard, sha256, area. Returns (uid, shard, representative, distance = 0), one
    row per sample to drop; samples without a sha256 are never exact duplicates.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    group = Window.partitionBy("sha256").orderBy(F.col("area").desc(), F.col("uid").asc())
    ranked = (
        corpus.where(F.col("sha256").isNotNull())
        .select("uid", "shard", "sha256", "area")
        .withColumn("rank", F.row_number().over(group))
        .withColumn("representative", F.first("uid").over(group))
    )
    return ranked.where(F.col("rank") > 1).select(
        "uid",
        F.col("shard").cast("int").alias("shard"),
        "representative",
        F.lit(0).cast("int").alias("distance"),
    )


def near_duplicate_pairs(corpus: DataFrame, count: int, max_distance: int) -> DataFrame:
    """Every pair of corpus samples within ``max_distance``: (a, b, distance), ``a < b``.

    ``corpus``: uid, phash; ``count``: its number of rows (sizes the band plan).
    """
    plan = join_plan(count, count, max_distance)
    hashes = corpus.selectExpr("uid AS id", "phash")
    pairs = hamming_join(hashes, hashes, plan, self_join=True)
    return pairs.selectExpr("left_id AS a", "right_id AS b", "distance")


def pair_ends(pairs: DataFrame, *columns: str) -> DataFrame:
    """Both ends of every pair (a, b, ...) as rows (uid, ``columns``...), repeats included."""
    return pairs.selectExpr("a AS uid", *columns).unionByName(pairs.selectExpr("b AS uid", *columns))


def pair_samples(pairs: DataFrame, corpus: DataFrame) -> DataFrame:
    """The corpus rows (uid, shard, phash, area) of the samples ``pairs`` (a, b) name."""
    return corpus.join(pair_ends(pairs).distinct(), "uid").select("uid", "shard", "phash", "area")


def duplicate_groups(accepted: DataFrame, samples: DataFrame) -> DataFrame:
    """Drop all but one sample of each connected group of ``accepted`` pairs (a, b): the near
    duplicates' confirmed pairs, or the semantic duplicates' pairs.

    ``samples``: uid, shard, phash, area of (at least) every sample the pairs name. Returns
    (uid, shard, representative, distance), ``distance`` the pHash distance to the representative.
    """
    from pyspark.sql import functions as F

    groups = connected_groups(accepted.select("a", "b"), samples.select("uid", "shard", "area"))
    mine = samples.select("uid", "phash")
    theirs = samples.select(F.col("uid").alias("representative"), F.col("phash").alias("kept_phash"))
    distance = F.bit_count(F.col("phash").bitwiseXOR(F.col("kept_phash"))).cast("int")
    return (
        groups.join(mine, "uid")
        .join(theirs, "representative")
        .select("uid", "shard", "representative", distance.alias("distance"))
    )


def best_thumbnail_distances(verdicts: DataFrame) -> DataFrame:
    """Per sample named by an accepted pair: the smallest thumbnail distance among its accepted
    pairs (null when none was compared). ``verdicts``: a, b, thumbnail_distance, accepted."""
    from pyspark.sql import functions as F

    ends = pair_ends(verdicts.where(F.col("accepted")), "thumbnail_distance")
    return ends.groupBy("uid").agg(F.min("thumbnail_distance").alias("thumbnail_distance"))
