"""Connected components in Spark (pipeline.dedup.components) on a real local session."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.dedup.components import connected_groups


def _groups(spark: Any, edges: list[tuple[str, str]], areas: dict[str, int]) -> dict[str, tuple[str, int]]:
    """``connected_groups`` as {uid: (representative, shard)}; shard is the uid's position."""
    frame = spark.createDataFrame(edges, "a string, b string")
    samples = spark.createDataFrame(
        [(uid, i, area) for i, (uid, area) in enumerate(sorted(areas.items()))],
        "uid string, shard int, area long",
    )
    result = connected_groups(frame, samples)
    assert result.columns == ["uid", "shard", "representative"]
    rows = result.collect()
    assert len(rows) == len({r.uid for r in rows})
    return {r.uid: (r.representative, r.shard) for r in rows}


def _representatives(spark: Any, edges: list[tuple[str, str]], areas: dict[str, int]) -> dict[str, str]:
    return {uid: rep for uid, (rep, _) in _groups(spark, edges, areas).items()}


def _expected(edges: list[tuple[str, str]], areas: dict[str, int]) -> dict[str, str]:
    """The reference: scipy's connected components, then (-area, uid) per group."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    nodes = sorted({u for edge in edges for u in edge})
    if not nodes:
        return {}
    position = {u: i for i, u in enumerate(nodes)}
    rows = np.array([position[a] for a, _ in edges])
    cols = np.array([position[b] for _, b in edges])
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(nodes), len(nodes)))
    _, labels = connected_components(graph, directed=False)
    members: dict[int, list[str]] = {}
    for uid, label in zip(nodes, labels, strict=True):
        members.setdefault(int(label), []).append(uid)
    out = {}
    for group in members.values():
        keep = min(group, key=lambda u: (-areas[u], u))
        out.update({u: keep for u in group if u != keep})
    return out


def test_a_chain_is_one_group_even_when_its_ends_are_far_apart(spark) -> None:
    # A-B-C: A and C never matched each other; B has the largest image.
    areas = {"a": 10, "b": 50, "c": 10}
    groups = _groups(spark, [("a", "b"), ("b", "c")], areas)
    assert groups == {"a": ("b", 0), "c": ("b", 2)}


def test_a_star_keeps_its_largest_member_whichever_end_it_is(spark) -> None:
    areas = {"hub": 5, **{f"leaf{i}": 10 + i for i in range(6)}}
    edges = [("hub", f"leaf{i}") if i % 2 else (f"leaf{i}", "hub") for i in range(6)]
    assert _representatives(spark, edges, areas) == {u: "leaf5" for u in areas if u != "leaf5"}


def test_several_groups_and_ties_by_area_broken_by_the_smallest_uid(spark) -> None:
    areas = {"x": 5, "y": 5, "z": 5, "p": 7, "q": 9, "lonely": 100}
    edges = [("z", "y"), ("y", "x"), ("p", "q")]
    assert _representatives(spark, edges, areas) == {"y": "x", "z": "x", "p": "q"}


def test_self_loops_and_duplicate_edges_change_nothing(spark) -> None:
    areas = {"a": 1, "b": 2, "c": 3}
    edges = [("a", "a"), ("a", "b"), ("b", "a"), ("a", "b"), ("c", "c")]
    assert _representatives(spark, edges, areas) == {"a": "b"}


def test_a_long_path_needing_many_rounds(spark) -> None:
    # The representative sits in the middle of a 300-node path whose keys alternate along it,
    # the worst case for label propagation (it would take ~150 rounds).
    n = 300
    uids = [f"n{i:04d}" for i in range(n)]
    areas = {u: (i * 7919) % n for i, u in enumerate(uids)}
    areas[uids[n // 2]] = 10 * n
    edges = list(zip(uids, uids[1:], strict=False))
    assert _representatives(spark, edges, areas) == {u: uids[n // 2] for u in uids if u != uids[n // 2]}


def test_empty_edges_give_no_rows(spark) -> None:
    assert _groups(spark, [], {"a": 1}) == {}
    assert _groups(spark, [("a", "a")], {"a": 1}) == {}


def test_areas_beyond_an_int_and_negative_keep_the_order(spark) -> None:
    areas = {"small": -(2**62), "big": 2**40, "huge": 2**62, "zero": 0}
    edges = [("small", "big"), ("big", "zero"), ("zero", "huge")]
    assert _representatives(spark, edges, areas) == {u: "huge" for u in areas if u != "huge"}


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(2, 40),
    density=st.floats(0.01, 0.15),
    seed=st.integers(0, 2**32 - 1),
)
def test_equals_scipy_on_a_random_graph(spark, n: int, density: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    uids = [f"u{i:02d}" for i in range(n)]
    # Few distinct areas, so ties by area are common.
    areas = {u: int(rng.integers(0, 4)) for u in uids}
    m = max(1, int(density * n * n))
    edges = [(uids[int(a)], uids[int(b)]) for a, b in rng.integers(0, n, size=(m, 2))]
    assert _representatives(spark, edges, areas) == _expected(edges, areas)


def test_equals_scipy_on_a_larger_sparse_graph(spark) -> None:
    rng = np.random.default_rng(0)
    uids = [f"s{i:04d}" for i in range(2000)]
    areas = {u: int(rng.integers(0, 50)) for u in uids}
    edges = [(uids[int(a)], uids[int(b)]) for a, b in rng.integers(0, len(uids), size=(1500, 2))]
    assert _representatives(spark, edges, areas) == _expected(edges, areas)
