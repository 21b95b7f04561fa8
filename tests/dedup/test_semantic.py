"""SemDeDup's pieces without Spark: k-means, cluster assignment, pairs inside a cluster."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.dedup.semantic import _in_sample, assign, cluster_pairs, default_clusters, spherical_kmeans


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_kmeans_finds_well_separated_clusters_and_is_deterministic() -> None:
    rng = np.random.default_rng(0)
    centres = _unit(rng.normal(size=(4, 16)))
    points = _unit(np.repeat(centres, 50, axis=0) + 0.05 * rng.normal(size=(200, 16)))
    found = spherical_kmeans(points, 4)
    labels = assign(points, found)
    # Every true cluster lands in one found cluster, and different ones in different clusters.
    groups = [set(labels[i * 50 : (i + 1) * 50].tolist()) for i in range(4)]
    assert all(len(g) == 1 for g in groups) and len(set().union(*groups)) == 4
    assert np.array_equal(found, spherical_kmeans(points, 4))
    assert np.allclose(np.linalg.norm(found, axis=1), 1, atol=1e-5)


def test_fewer_points_than_clusters_gives_the_points() -> None:
    points = _unit(np.eye(3, 8) + 0.1)
    assert np.array_equal(spherical_kmeans(points, 5), points.astype(np.float32))


def test_default_clusters_is_the_square_root() -> None:
    assert [default_clusters(n) for n in (0, 1, 99, 100, 10_000_000)] == [1, 1, 9, 10, 3162]


def test_training_sample_is_a_stable_share_of_uids() -> None:
    uids = [f"uid{i}" for i in range(20_000)]
    chosen = [u for u in uids if _in_sample(u, 0.1)]
    assert 1_800 < len(chosen) < 2_200
    assert chosen == [u for u in uids if _in_sample(u, 0.1)]
    assert all(_in_sample(u, 1.0) for u in uids[:10])


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 60), st.floats(0.5, 0.99), st.integers(1, 17), st.integers(0, 10_000))
def test_cluster_pairs_equal_brute_force(count: int, threshold: float, block: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    base = _unit(rng.normal(size=(3, 8)))
    rows = _unit(base[rng.integers(0, 3, count)] + 0.3 * rng.normal(size=(count, 8))).astype(np.float16)
    members = [(f"u{i:03d}", row.tobytes()) for i, row in enumerate(rows)]
    rng.shuffle(members)
    found = {(a, b) for a, b, _ in cluster_pairs(members, threshold, block)}
    exact = rows.astype(np.float32) @ rows.astype(np.float32).T
    close = np.argwhere(np.triu(exact >= threshold, k=1))
    expected = {(f"u{i:03d}", f"u{j:03d}") for i, j in close.tolist()}
    assert found == expected
