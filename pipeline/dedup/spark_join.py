"""Exact Hamming-distance join of two DataFrames of 64-bit hashes, as a Spark shuffle join.

The multi-index argument of :mod:`pipeline.dedup.hamming`, in SQL: the bits are split into
bands; the left side is expanded with every neighbour of each band value within the plan's
radius, the right side keeps its band values, and the two are equi-joined on (band, value).
Every pair within the distance meets in at least one band, so after the candidates are verified
with a popcount and deduplicated, the result is exact. Used for within-corpus near-duplicates
(a self-join) and for benchmark sets too large to broadcast.
"""

from __future__ import annotations

from typing import Any

from pipeline.dedup.hamming import BandPlan, _plan_cost, _widths, neighbour_masks, plan_bands
from pipeline.image.phash import to_signed64


def join_plan(n_left: int, n_right: int, max_distance: int) -> BandPlan:
    """A band plan for the SQL join (never the all-pairs plan, which would be a cross join)."""
    plan = plan_bands(n_left, n_right, max_distance)
    if not plan.brute_force:
        return plan
    m = min(range(2, max_distance + 2), key=lambda k: _plan_cost(n_left, n_right, max_distance, k)[0])
    bands, offset = [], 0
    for width in _widths(m):
        bands.append((offset, width))
        offset += width
    return BandPlan(bands=tuple(bands), radius=max_distance // m, max_distance=max_distance)


def _band_column(phash: Any, offset: int, width: int) -> Any:
    from pyspark.sql import functions as F

    mask = F.lit(to_signed64((1 << width) - 1)).cast("long")
    return F.shiftrightunsigned(phash, offset).bitwiseAND(mask)


def _banded(df: Any, plan: BandPlan, expand: bool) -> Any:
    """One row per (row, band[, neighbour]) with columns id, phash, band, key."""
    from pyspark.sql import functions as F

    parts = []
    for index, (offset, width) in enumerate(plan.bands):
        value = _band_column(F.col("phash"), offset, width)
        part = df.select("id", "phash", F.lit(index).alias("band"), value.alias("value"))
        if expand and plan.radius > 0:
            masks = F.array(*[F.lit(int(m)).cast("long") for m in neighbour_masks(width, plan.radius)])
            part = part.select("id", "phash", "band", F.explode(masks).alias("mask"), "value").select(
                "id", "phash", "band", F.col("value").bitwiseXOR(F.col("mask")).alias("key")
            )
        else:
            part = part.withColumnRenamed("value", "key")
        parts.append(part)
    result = parts[0]
    for part in parts[1:]:
        result = result.unionByName(part)
    return result


def hamming_join(left: Any, right: Any, plan: BandPlan, self_join: bool = False) -> Any:
    """Every (left_id, right_id, distance) with popcount(left.phash ^ right.phash) <= distance.

    ``left`` and ``right`` have columns ``id`` (string) and ``phash`` (long, signed 64-bit).
    With ``self_join`` (``left`` is ``right``), each unordered pair of distinct ids comes once,
    with ``left_id < right_id``.
    """
    from pyspark.sql import functions as F

    lhs = _banded(left, plan, expand=True).select(
        F.col("id").alias("left_id"), F.col("phash").alias("left_phash"), "band", "key"
    )
    rhs = _banded(right, plan, expand=False).select(
        F.col("id").alias("right_id"), F.col("phash").alias("right_phash"), "band", "key"
    )
    pairs = lhs.join(rhs, on=["band", "key"]).select(
        "left_id",
        "right_id",
        F.bit_count(F.col("left_phash").bitwiseXOR(F.col("right_phash"))).cast("int").alias("distance"),
    )
    pairs = pairs.where(F.col("distance") <= plan.max_distance)
    if self_join:
        pairs = pairs.where(F.col("left_id") < F.col("right_id"))
    return pairs.dropDuplicates(["left_id", "right_id"])
