"""Duplicates inside the corpus: exact (same downloaded bytes) and near (pHash within a distance).

Groups are connected components of the "is a duplicate of" relation (single linkage: if A
matches B and B matches C, all three form one group even when A and C are further apart). One
representative per group is kept, chosen deterministically: the sample with the largest
original image (width x height), ties broken by the smallest uid. Every other member is
reported with the representative's uid as its group id.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.dedup.spark_join import hamming_join, join_plan


@dataclass(frozen=True)
class CorpusSample:
    uid: str
    shard: int
    phash: int
    area: int


@dataclass(frozen=True)
class Duplicate:
    """A sample to drop: ``representative`` is the uid kept for its group."""

    uid: str
    shard: int
    representative: str
    distance: int


def representative(members: Iterable[CorpusSample]) -> CorpusSample:
    """The sample a group keeps: largest original image, then smallest uid."""
    return min(members, key=lambda s: (-s.area, s.uid))


def _phash_distance(a: int, b: int) -> int:
    return bin((a ^ b) & ((1 << 64) - 1)).count("1")


def exact_duplicates(corpus: Any) -> list[Duplicate]:
    """Samples whose downloaded bytes (sha256) equal those of a kept sample."""
    repeated = corpus.groupBy("sha256").count().where("count > 1").select("sha256")
    members = corpus.join(repeated, "sha256").select("sha256", "uid", "shard", "phash", "area").collect()
    groups: dict[str, list[CorpusSample]] = defaultdict(list)
    for sha, uid, shard, phash, area in members:
        groups[sha].append(CorpusSample(uid, int(shard), int(phash), int(area)))
    dropped = []
    for group in groups.values():
        keep = representative(group)
        dropped.extend(Duplicate(s.uid, s.shard, keep.uid, 0) for s in group if s.uid != keep.uid)
    return sorted(dropped, key=lambda d: d.uid)


def near_duplicate_pairs(
    corpus: Any, count: int, max_distance: int
) -> tuple[list[tuple[str, str, int]], dict[str, CorpusSample]]:
    """Every pair of corpus samples within ``max_distance``, and the samples involved."""
    plan = join_plan(count, count, max_distance)
    hashes = corpus.selectExpr("uid AS id", "phash")
    pairs = hamming_join(hashes, hashes, plan, self_join=True).persist()
    try:
        found = [(a, b, int(d)) for a, b, d in pairs.collect()]
        ids = pairs.selectExpr("left_id AS uid").union(pairs.selectExpr("right_id AS uid")).distinct()
        info = corpus.join(ids, "uid").select("uid", "shard", "phash", "area").collect()
    finally:
        pairs.unpersist()
    samples = {uid: CorpusSample(uid, int(shard), int(phash), int(area)) for uid, shard, phash, area in info}
    return found, samples


def near_duplicate_groups(
    pairs: list[tuple[str, str, int]],
    samples: dict[str, CorpusSample],
    accept: Callable[[str, str], bool] = lambda a, b: True,
) -> list[Duplicate]:
    """Drop all but one sample of each connected group of accepted pairs."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    kept_pairs = [(a, b) for a, b, _ in pairs if accept(a, b)]
    if not kept_pairs:
        return []
    uids = sorted({u for pair in kept_pairs for u in pair})
    position = {u: i for i, u in enumerate(uids)}
    rows = np.array([position[a] for a, _ in kept_pairs])
    cols = np.array([position[b] for _, b in kept_pairs])
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(uids), len(uids)))
    _, labels = connected_components(graph, directed=False)
    groups: dict[int, list[CorpusSample]] = defaultdict(list)
    for uid, label in zip(uids, labels, strict=True):
        groups[int(label)].append(samples[uid])
    dropped = []
    for group in groups.values():
        keep = representative(group)
        dropped.extend(
            Duplicate(s.uid, s.shard, keep.uid, _phash_distance(s.phash, keep.phash))
            for s in group
            if s.uid != keep.uid
        )
    return sorted(dropped, key=lambda d: d.uid)
