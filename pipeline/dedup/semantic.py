"""Semantic duplicates inside the corpus (SemDeDup): image embeddings nearly the same.

Opt-in (``--semantic-threshold``), on the score job's saved image embeddings
(:mod:`pipeline.dedup.embeddings`). As in SemDeDup (Abbas et al., 2023):

1. **Clusters.** Spherical k-means on a sample of the embeddings: at most
   :data:`MAX_TRAINING_SAMPLE` rows, drawn per shard by a hash of the uid (the same sample on
   every run), trained on the driver with a fixed seed; ``--semantic-clusters`` centroids
   (default: the square root of the corpus size, which balances the assignment's cost, N x k,
   against the comparisons inside clusters, N x N / k). The centroids are broadcast and every
   sample is assigned to its nearest one in the task that reads its shard.
2. **Pairs.** Inside each cluster (a Spark group), every pair whose cosine similarity reaches the
   threshold, by blocked matrix products; a cluster never leaves its executor.
3. **Groups.** Connected components of those pairs in Spark
   (:func:`pipeline.dedup.components.connected_groups`); each group keeps one representative,
   the same rule as for near duplicates (largest original image, then smallest uid), or with
   ``--semantic-keep score`` the best CLIP score (then smallest uid; see :func:`by_score`).

Nothing per pair or per group is collected to the driver; only the rows to drop come back, as
for the other reasons. Two duplicates that k-means puts in different clusters are not compared:
the price of not comparing all N x N pairs, as in SemDeDup.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.dataset import Dataset
from pipeline.dedup.embeddings import shard_embeddings
from pipeline.executor import SparkExecutor

log = logging.getLogger(__name__)

MAX_TRAINING_SAMPLE = 100_000
# Training rows per centroid (when the corpus has that many).
SAMPLE_PER_CLUSTER = 64
KMEANS_ITERATIONS = 20
KMEANS_SEED = 0
PAIR_BLOCK = 1024


def default_clusters(count: int) -> int:
    """``--semantic-clusters 0``: the square root of the number of samples (at least 1)."""
    return max(1, math.isqrt(max(count, 1)))


def _in_sample(uid: str, fraction: float) -> bool:
    """Whether ``uid`` is in the training sample: a stable hash, not a random draw."""
    if fraction >= 1:
        return True
    value = int.from_bytes(hashlib.blake2b(uid.encode(), digest_size=8).digest(), "big")
    return value < fraction * 2**64


@dataclass(frozen=True)
class SampleEmbeddings:
    """The training sample's embeddings of one raw shard, as float32 bytes."""

    dataset: Dataset
    fraction: float

    def __call__(self, shard: int) -> Iterator[tuple[str, bytes]]:
        uids, matrix = shard_embeddings(self.dataset, shard)
        for uid, row in zip(uids, matrix, strict=True):
            if _in_sample(uid, self.fraction):
                yield uid, row.astype(np.float32).tobytes()


def spherical_kmeans(
    points: np.ndarray, clusters: int, iterations: int = KMEANS_ITERATIONS, seed: int = KMEANS_SEED
) -> np.ndarray:
    """Unit-norm centroids of ``points`` (unit rows) by cosine k-means, k-means++ seeding.

    Deterministic for given points, ``clusters`` and ``seed``. Fewer points than clusters: the
    distinct points themselves.
    """
    points = points.astype(np.float32)
    if len(points) <= clusters:
        return points.copy()
    rng = np.random.default_rng(seed)
    centroids = [points[int(rng.integers(len(points)))]]
    closest = 1 - points @ centroids[0]
    for _ in range(1, clusters):
        weights = np.maximum(closest, 0) ** 2
        total = float(weights.sum())
        if total <= 0:
            index = int(rng.integers(len(points)))
        else:
            index = int(rng.choice(len(points), p=weights / total))
        centroids.append(points[index])
        closest = np.minimum(closest, 1 - points @ points[index])
    matrix = np.stack(centroids)
    for _ in range(iterations):
        labels = assign(points, matrix)
        sums = np.zeros_like(matrix)
        np.add.at(sums, labels, points)
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        moved = np.where(norms > 0, sums / np.maximum(norms, 1e-12), matrix)
        if np.allclose(moved, matrix, atol=1e-6):
            break
        matrix = moved.astype(np.float32)
    return matrix


def assign(points: np.ndarray, centroids: np.ndarray, block: int = 4096) -> np.ndarray:
    """The index of each point's most similar centroid (ties: the lowest index)."""
    labels = np.empty(len(points), dtype=np.int64)
    for start in range(0, len(points), block):
        labels[start : start + block] = (points[start : start + block] @ centroids.T).argmax(axis=1)
    return labels


@dataclass(frozen=True)
class AssignClusters:
    """(cluster, uid, embedding bytes) of every scored sample of one raw shard."""

    dataset: Dataset
    centroids: Any  # a Spark broadcast of the (k, dim) float32 centroids

    def __call__(self, shard: int) -> Iterator[tuple[int, str, bytes]]:
        uids, matrix = shard_embeddings(self.dataset, shard)
        if not uids:
            return
        labels = assign(matrix, self.centroids.value)
        for uid, label, row in zip(uids, labels, matrix, strict=True):
            yield int(label), uid, row.astype(np.float16).tobytes()


def cluster_pairs(
    members: Iterable[tuple[str, bytes]], threshold: float, block: int = PAIR_BLOCK
) -> Iterator[tuple[str, str, float]]:
    """Every pair ``(a, b, similarity)`` of one cluster's members with ``a < b`` and cosine
    similarity at least ``threshold``."""
    ordered = sorted(members)
    if len(ordered) < 2:
        return
    uids = [u for u, _ in ordered]
    matrix = np.stack([np.frombuffer(e, dtype=np.float16) for _, e in ordered]).astype(np.float32)
    for start in range(0, len(uids), block):
        similar = matrix[start : start + block] @ matrix.T
        rows, cols = np.nonzero(similar >= threshold)
        for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
            a = start + i
            if a < j:
                yield uids[a], uids[j], float(similar[i, j])


def semantic_pairs(
    executor: SparkExecutor, dataset: Dataset, shards: list[int], count: int, threshold: float, clusters: int
) -> tuple[Any, dict[str, Any]]:
    """A DataFrame ``(a, b, similarity)`` of every within-cluster pair at or above ``threshold``,
    and what the clustering did (clusters, training sample)."""
    k = clusters or default_clusters(count)
    fraction = min(1.0, min(MAX_TRAINING_SAMPLE, SAMPLE_PER_CLUSTER * k) / max(count, 1))
    sample = executor.flat_map(shards, SampleEmbeddings(dataset, fraction)).collect()
    sample.sort()
    if not sample:
        return executor.spark.createDataFrame([], "a string, b string, similarity float"), {"clusters": 0}
    points = np.stack([np.frombuffer(e, dtype=np.float32) for _, e in sample])
    centroids = spherical_kmeans(points, k)
    log.info("semantic dedup: %d clusters trained on %d of %d embeddings", len(centroids), len(points), count)
    broadcast = executor.context.broadcast(centroids)
    assigned = executor.flat_map(shards, AssignClusters(dataset, broadcast))
    partitions = max(1, min(len(centroids), executor.context.defaultParallelism * 4))
    pairs = (
        assigned.map(lambda row: (row[0], (row[1], row[2])))
        .groupByKey(partitions)
        .flatMap(lambda cluster: cluster_pairs(cluster[1], threshold))
    )
    frame = executor.spark.createDataFrame(pairs, "a string, b string, similarity float")
    return frame, {"clusters": int(len(centroids)), "training_sample": len(points)}


# --semantic-keep score: the components' rank key orders by a long "area"; a score becomes one.
_SCORE_SCALE = 10**12
UNSCORED_RANK = -1  # below every score's rank: an unscored or NaN sample is never preferred


def score_rank(score: float | None) -> int:
    """The long that ranks a CLIP score like the score (``(score + 1) * 1e12``, cosines in [-1, 1])."""
    if score is None or math.isnan(score):
        return UNSCORED_RANK
    return int(round((min(max(score, -1.0), 1.0) + 1.0) * _SCORE_SCALE))


def clip_scores(executor: SparkExecutor, dataset: Dataset, shards: Iterable[int]) -> Any:
    """A DataFrame (uid string, score_rank long) of every scored sample, one task per shard."""
    from pyspark.sql import types as T

    def read(shard: int) -> list[tuple[str, int]]:
        table = dataset.scores.shard(shard).table(["uid", "clip_score"])
        uids, scores = table.column("uid").to_pylist(), table.column("clip_score").to_pylist()
        return [(uid, score_rank(score)) for uid, score in zip(uids, scores, strict=True)]

    schema = T.StructType(
        [T.StructField("uid", T.StringType(), False), T.StructField("score_rank", T.LongType(), False)]
    )
    return executor.spark.createDataFrame(executor.flat_map(list(shards), read), schema)


def by_score(samples: Any, scores: Any) -> Any:
    """``samples`` (uid, shard, phash, area) with ``area`` replaced by the CLIP score's rank, so the
    groups' representative rule (largest ``area``, then smallest uid) keeps the best-scored member."""
    from pyspark.sql import functions as F

    ranked = samples.drop("area").join(scores, "uid", "left")
    return ranked.select(
        "uid", "shard", "phash", F.coalesce(F.col("score_rank"), F.lit(UNSCORED_RANK)).alias("area")
    )
