"""Grouping duplicates in Spark and the Spark band join, against brute force."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from pipeline.dedup.spark_join import hamming_join, join_plan
from pipeline.dedup.within_corpus import (
    best_thumbnail_distances,
    duplicate_groups,
    exact_duplicates,
    near_duplicate_pairs,
    pair_samples,
)
from pipeline.image.phash import from_signed64, to_signed64

_SAMPLES = "uid string, shard int, phash long, area long"


def _samples(spark: Any) -> Any:
    rows = [("a", 0, 0, 10), ("b", 1, 1, 50), ("c", 2, 3, 10), ("x", 3, 255, 5), ("y", 4, 254, 5)]
    return spark.createDataFrame(rows, _SAMPLES)


def test_exact_duplicates_keep_the_largest_then_the_smallest_uid(spark) -> None:
    rows = [
        ("b", 0, "s1", 100),
        ("a", 1, "s1", 100),
        ("c", 2, "s1", 400),
        ("d", 3, "s2", 7),
        ("e", 4, "s2", 7),
        ("f", 5, "s3", 1),
        ("g", 6, None, 1),
        ("h", 7, None, 1),
    ]
    corpus = spark.createDataFrame(rows, "uid string, shard int, sha256 string, area long")
    found = {r.uid: (r.shard, r.representative, r.distance) for r in exact_duplicates(corpus).collect()}
    # s1: c is the largest; s2: a tie on area, the smaller uid d stays; no sha256: never a duplicate.
    assert found == {"a": (1, "c", 0), "b": (0, "c", 0), "e": (4, "d", 0)}


def test_groups_are_connected_components_and_keep_one_each(spark) -> None:
    samples = _samples(spark)
    pairs = spark.createDataFrame([("a", "b"), ("b", "c"), ("x", "y")], "a string, b string")
    found = {
        r.uid: (r.representative, r.distance, r.shard)
        for r in duplicate_groups(pairs, samples).collect()
    }
    # a-b-c chain: b has the largest image; x-y tie on area: the smaller uid x stays. The distance
    # is the pHash distance to the kept sample.
    assert found == {"a": ("b", 1, 0), "c": ("b", 1, 2), "y": ("x", 1, 4)}
    # A rejected pair (left out of the accepted pairs) breaks the chain.
    accepted = pairs.where("NOT (a = 'b' AND b = 'c')")
    assert {r.uid for r in duplicate_groups(accepted, samples).collect()} == {"a", "y"}


def test_candidate_pairs_and_their_samples(spark) -> None:
    samples = _samples(spark)
    pairs = near_duplicate_pairs(samples, 5, 2)
    assert {tuple(r) for r in pairs.collect()} == {("a", "b", 1), ("a", "c", 2), ("b", "c", 1), ("x", "y", 1)}
    named = pair_samples(pairs.where("a = 'a' AND b = 'b'"), samples)
    assert sorted(tuple(r) for r in named.collect()) == [("a", 0, 0, 10), ("b", 1, 1, 50)]


def test_best_thumbnail_distance_is_the_smallest_of_the_accepted_pairs(spark) -> None:
    verdicts = spark.createDataFrame(
        [
            ("a", "b", 0.004, True, True),
            ("b", "c", 0.001, True, True),
            ("a", "c", 0.0, True, False),  # rejected: does not count
            ("x", "y", None, True, True),  # not compared
        ],
        "a string, b string, thumbnail_distance double, guard boolean, accepted boolean",
    )
    found = {r.uid: r.thumbnail_distance for r in best_thumbnail_distances(verdicts).collect()}
    assert found == {"a": 0.004, "b": 0.001, "c": 0.001, "x": None, "y": None}


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
