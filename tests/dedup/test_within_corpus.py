"""Grouping duplicates and the Spark band join, against brute force."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.dedup.spark_join import hamming_join, join_plan
from pipeline.dedup.within_corpus import CorpusSample, near_duplicate_groups, representative
from pipeline.image.phash import from_signed64, to_signed64


def test_representative_is_the_largest_then_smallest_uid() -> None:
    group = [CorpusSample("b", 0, 1, 100), CorpusSample("a", 0, 1, 100), CorpusSample("c", 1, 1, 400)]
    assert representative(group).uid == "c"
    assert representative(group[:2]).uid == "a"


def test_groups_are_connected_components_and_keep_one_each() -> None:
    samples = {
        u: CorpusSample(u, 0, h, area)
        for u, h, area in [("a", 0, 10), ("b", 1, 50), ("c", 3, 10), ("x", 255, 5), ("y", 254, 5)]
    }
    pairs = [("a", "b", 1), ("b", "c", 1), ("x", "y", 1)]
    dropped = {d.uid: (d.representative, d.distance) for d in near_duplicate_groups(pairs, samples)}
    # a-b-c chain: b has the largest image; x-y tie on area: the smaller uid x stays.
    assert dropped == {"a": ("b", 1), "c": ("b", 1), "y": ("x", 1)}
    # A rejected pair breaks the chain.
    dropped = {d.uid for d in near_duplicate_groups(pairs, samples, lambda a, b: {a, b} != {"b", "c"})}
    assert dropped == {"a", "y"}


@pytest.mark.parametrize("max_distance", [0, 3, 9])
def test_spark_band_join_is_exact(spark, max_distance: int) -> None:
    from pyspark.sql import types as T

    rng = np.random.default_rng(max_distance)
    base = rng.integers(-(2**63), 2**63 - 1, 60, dtype=np.int64)
    # Near copies: flip 0..max_distance+2 random bits of some hashes, so pairs sit on both sides of the limit.
    copies = []
    for h in base[:30]:
        flips = rng.choice(64, size=int(rng.integers(0, max_distance + 3)), replace=False)
        mask = sum(1 << int(b) for b in flips)
        copies.append(to_signed64(from_signed64(int(h)) ^ mask))
    hashes = [int(h) for h in base] + [int(c) for c in copies]
    rows = [(f"u{i:03d}", h) for i, h in enumerate(hashes)]
    schema = T.StructType([T.StructField("id", T.StringType()), T.StructField("phash", T.LongType())])
    frame = spark.createDataFrame(rows, schema)
    plan = join_plan(len(rows), len(rows), max_distance)
    found = {(a, b, d) for a, b, d in hamming_join(frame, frame, plan, self_join=True).collect()}
    brute = set()
    for i, (a, ha) in enumerate(rows):
        for b, hb in rows[i + 1 :]:
            d = bin((ha ^ hb) & (2**64 - 1)).count("1")
            if d <= max_distance:
                brute.add((a, b, d))
    assert found == brute
    assert len(brute) >= 3  # the planted copies put pairs on both sides of the limit
