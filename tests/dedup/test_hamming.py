"""Exact Hamming search: every plan finds exactly the pairs brute force finds."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.dedup import hamming
from pipeline.dedup.hamming import (
    BandPlan,
    HammingIndex,
    band_values,
    hamming_distance,
    neighbour_masks,
    plan_bands,
)

MASK64 = (1 << 64) - 1


def brute_force(queries: list[int], index: list[int], d: int) -> list[tuple[int, int, int]]:
    """Reference: Python ints, no numpy, every pair."""
    pairs = []
    for qi, q in enumerate(queries):
        for ii, h in enumerate(index):
            distance = bin((q ^ h) & MASK64).count("1")
            if distance <= d:
                pairs.append((qi, ii, distance))
    return pairs


def as_pairs(result: tuple[np.ndarray, np.ndarray, np.ndarray]) -> list[tuple[int, int, int]]:
    q, i, d = result
    assert q.dtype == np.int64 and i.dtype == np.int64 and d.dtype == np.uint8
    return list(zip(q.tolist(), i.tolist(), d.tolist(), strict=True))


def plan_with(m: int, d: int) -> BandPlan:
    """A plan of ``m`` bands (the same split plan_bands uses), to force every search path."""
    widths = hamming._widths(m)
    offsets = np.cumsum([0, *widths[:-1]]).tolist()
    return BandPlan(bands=tuple(zip(offsets, widths, strict=True)), radius=d // m, max_distance=d)


def to_array(values: list[int], signed: bool) -> np.ndarray:
    if signed:
        return np.array([v - (1 << 64) if v >= 1 << 63 else v for v in values], dtype=np.int64)
    return np.array(values, dtype=np.uint64)


def flip(value: int, bits: list[int]) -> int:
    for bit in bits:
        value ^= 1 << bit
    return value


uint64s = st.integers(min_value=0, max_value=MASK64)


@st.composite
def clustered(draw: st.DrawFn, max_size: int) -> list[int]:
    """Hashes near a few centres (real pHashes cluster), with exact duplicates."""
    centres = draw(st.lists(uint64s, min_size=1, max_size=3))
    flips = st.lists(st.integers(min_value=0, max_value=63), max_size=12)
    members = draw(st.lists(st.tuples(st.sampled_from(centres), flips), max_size=max_size))
    return [flip(centre, bits) for centre, bits in members]


@st.composite
def hash_sets(draw: st.DrawFn) -> tuple[list[int], list[int]]:
    """(queries, index): random, clustered, or queries planted near index hashes; duplicates too."""
    kind = draw(st.sampled_from(["random", "clustered", "planted"]))
    if kind == "random":
        index = draw(st.lists(uint64s, max_size=40))
        queries = draw(st.lists(uint64s, max_size=40))
    elif kind == "clustered":
        index = draw(clustered(40))
        queries = draw(clustered(40)) + index[:5]
    else:
        index = draw(st.lists(uint64s, max_size=30))
        flips = st.lists(st.integers(min_value=0, max_value=63), max_size=18)
        planted = [flip(h, draw(flips)) for h in index]
        queries = planted + draw(st.lists(uint64s, max_size=10))
    if index and draw(st.booleans()):
        index = index + index[: draw(st.integers(1, len(index)))]
    if queries and draw(st.booleans()):
        queries = queries + queries[: draw(st.integers(1, len(queries)))]
    return queries, index


@settings(max_examples=150, deadline=None)
@given(
    data=hash_sets(),
    d=st.integers(min_value=0, max_value=16),
    m=st.one_of(st.none(), st.integers(min_value=1, max_value=20)),
    signed=st.booleans(),
    chunk_size=st.integers(min_value=1, max_value=50),
)
def test_search_equals_brute_force(
    data: tuple[list[int], list[int]], d: int, m: int | None, signed: bool, chunk_size: int
) -> None:
    queries, index = data
    # Explicit band counts force every search path; skip those whose expansion is too big to test.
    plan = None if m is None or hamming._ball(64 // m + 1, d // m) > 20_000 else plan_with(m, d)
    found = HammingIndex(to_array(index, signed), d, plan).search(to_array(queries, not signed), chunk_size)
    assert as_pairs(found) == brute_force(queries, index, d)


@pytest.mark.parametrize(
    ("m", "d"),
    [(m, d) for m in (1, 2, 3, 4, 5, 9, 17, 33, 64) for d in (0, 3, 8, 16) if (m, d) != (2, 16)],
)
def test_every_band_count_is_exact(m: int, d: int) -> None:
    """Dense and sorted band tables, whole-hash lookups, all-pairs: same answer as brute force."""
    rng = np.random.default_rng(m * 100 + d)
    index = rng.integers(0, 1 << 64, 60, dtype=np.uint64)
    index[10:15] = index[:5]  # duplicate index hashes
    flips = rng.integers(0, 64, (60, d + 2)).astype(np.uint64)
    queries = index.copy()
    for column in range(d + 2):
        # Flip up to d + 2 bits (repeats cancel), so matches and near misses both occur.
        queries[: 20 + column * 5] ^= np.uint64(1) << flips[: 20 + column * 5, column]
    queries = np.concatenate([queries, queries[:7], rng.integers(0, 1 << 64, 30, dtype=np.uint64)])
    found = HammingIndex(index, d, plan_with(m, d)).search(queries, chunk_size=16)
    expected = brute_force([int(v) for v in queries], [int(v) for v in index], d)
    assert as_pairs(found) == expected
    assert len(expected) >= 20


def test_candidate_batches_bound_memory_without_losing_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cluster whose candidates exceed the batch budget is verified batch by batch."""
    rng = np.random.default_rng(3)
    centre = int(rng.integers(0, 1 << 63))
    index = [flip(centre, rng.integers(0, 64, 3).tolist()) for _ in range(40)]
    queries = [flip(centre, rng.integers(0, 64, 4).tolist()) for _ in range(30)]
    expected = brute_force(queries, index, 6)
    monkeypatch.setattr(hamming, "_CANDIDATE_BUDGET", 7)
    built = HammingIndex(np.array(index, dtype=np.uint64), 6, plan_with(4, 6))
    assert as_pairs(built.search(np.array(queries, dtype=np.uint64), chunk_size=11)) == expected
    assert len(expected) > 7 * 4


def test_empty_inputs() -> None:
    empty = np.zeros(0, dtype=np.int64)
    some = np.array([1, 2, 3], dtype=np.int64)
    for index, queries in ((empty, some), (some, empty), (empty, empty), ([], [])):
        q, i, d = HammingIndex(index, 8).search(queries)
        assert q.size == i.size == d.size == 0
        assert (q.dtype, i.dtype, d.dtype) == (np.int64, np.int64, np.uint8)


def test_signed_and_unsigned_storage_give_the_same_matches() -> None:
    unsigned = np.array([0, 1 << 63, MASK64, (1 << 63) | 5, 12345], dtype=np.uint64)
    signed = unsigned.view(np.int64)
    assert signed.min() < 0
    queries = unsigned ^ np.uint64(0b1011)
    expected = as_pairs(HammingIndex(unsigned, 3).search(queries))
    assert expected == brute_force([int(v) for v in queries], [int(v) for v in unsigned], 3)
    assert as_pairs(HammingIndex(signed, 3).search(queries.view(np.int64))) == expected
    assert as_pairs(HammingIndex(signed, 3).search(queries)) == expected


def test_pickle_round_trip_keeps_results_and_size() -> None:
    rng = np.random.default_rng(7)
    index = rng.integers(0, 1 << 64, 200, dtype=np.uint64)
    queries = np.concatenate([index ^ np.uint64(0b10001), rng.integers(0, 1 << 64, 100, dtype=np.uint64)])
    built = HammingIndex(index.view(np.int64), 4)
    restored = pickle.loads(pickle.dumps(built, protocol=pickle.HIGHEST_PROTOCOL))
    assert restored.nbytes == built.nbytes > index.nbytes
    assert restored.plan == built.plan
    assert as_pairs(restored.search(queries)) == as_pairs(built.search(queries))
    assert len(restored.search(queries)[0]) >= 200


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="max_distance"):
        HammingIndex(np.zeros(3, np.uint64), 65)
    with pytest.raises(ValueError, match="max_distance"):
        plan_bands(10, 10, -1)
    with pytest.raises(ValueError, match="plan is for max_distance 4"):
        HammingIndex(np.zeros(3, np.uint64), 8, plan_with(3, 4))
    with pytest.raises(TypeError, match="float64"):
        HammingIndex(np.array([1.5]), 4)
    with pytest.raises(ValueError, match="1-D"):
        HammingIndex(np.zeros((2, 2), np.uint64), 4)
    with pytest.raises(ValueError, match="negative int32"):
        HammingIndex(np.array([-1], dtype=np.int32), 4)
    with pytest.raises(ValueError, match="chunk_size"):
        HammingIndex(np.zeros(3, np.uint64), 4).search(np.zeros(3, np.uint64), chunk_size=0)


def test_band_plan_rejects_plans_that_could_miss_pairs() -> None:
    with pytest.raises(ValueError, match="radius must be"):
        BandPlan(bands=((0, 32), (32, 32)), radius=3, max_distance=8)
    with pytest.raises(ValueError, match="overlaps"):
        BandPlan(bands=((0, 33), (32, 32)), radius=4, max_distance=8)
    with pytest.raises(ValueError, match="cover all 64 bits"):
        BandPlan(bands=((0, 32), (33, 31)), radius=4, max_distance=8)
    with pytest.raises(ValueError, match="within 64 bits"):
        BandPlan(bands=((0, 32), (32, 40)), radius=4, max_distance=8)


@settings(max_examples=200, deadline=None)
@given(
    n_index=st.integers(min_value=0, max_value=10**9),
    n_queries=st.integers(min_value=0, max_value=10**12),
    d=st.integers(min_value=0, max_value=64),
)
def test_plan_bands_covers_64_bits_disjointly_with_a_safe_radius(
    n_index: int, n_queries: int, d: int
) -> None:
    plan = plan_bands(n_index, n_queries, d)
    bits = [offset + k for offset, width in plan.bands for k in range(width)]
    assert sorted(bits) == list(range(64))
    m = len(plan.bands)
    assert plan.radius * m <= d < (plan.radius + 1) * m  # pigeonhole: some band is within radius
    assert plan.max_distance == d


def test_plan_bands_follows_the_cost_model() -> None:
    # 100k benchmark hashes, 10M corpus hashes, d = 8: three ~21-bit bands of radius 2.
    assert plan_bands(100_000, 10_000_000, 8) == BandPlan(((0, 21), (21, 21), (42, 22)), 2, 8)
    # Exact duplicates only: one lookup of the whole hash.
    assert plan_bands(100_000, 10_000_000, 0) == BandPlan(((0, 64),), 0, 0)
    # A handful of index hashes, or a distance where no banding helps: compare every pair.
    assert plan_bands(3, 10_000_000, 8).bands == ((0, 64),)
    assert plan_bands(100_000, 10_000_000, 30).bands == ((0, 64),)
    # The index stays within the memory cap whenever some plan does.
    for n_index in (10**5, 10**6, 10**7):
        for d in range(0, 17):
            _, nbytes = hamming._plan_cost(n_index, 10**9, d, len(plan_bands(n_index, 10**9, d).bands))
            assert nbytes <= hamming.MAX_INDEX_BYTES


@pytest.mark.parametrize(("width", "radius"), [(1, 0), (1, 3), (5, 2), (16, 3), (21, 2), (64, 1), (8, 8)])
def test_neighbour_masks_are_all_masks_within_radius(width: int, radius: int) -> None:
    masks = neighbour_masks(width, radius)
    assert masks.dtype == np.uint64
    expected_count = sum(math.comb(width, k) for k in range(min(radius, width) + 1))
    assert masks.size == expected_count == np.unique(masks).size
    assert masks[0] == 0
    assert int(masks.max()) < 1 << width
    assert int(np.bitwise_count(masks).max()) == min(radius, width)
    if width <= 8:
        assert masks.tolist() == [v for v in range(1 << width) if bin(v).count("1") <= radius]


@settings(max_examples=50, deadline=None)
@given(values=st.lists(uint64s, max_size=20), m=st.integers(min_value=1, max_value=64))
def test_band_values_reassemble_the_hash(values: list[int], m: int) -> None:
    plan = plan_with(m, 0)
    bands = band_values(to_array(values, signed=True), plan)
    assert bands.shape == (len(values), m) and bands.dtype == np.uint64
    for value, row in zip(values, bands.tolist(), strict=True):
        assert sum(band << offset for band, (offset, _) in zip(row, plan.bands, strict=True)) == value
        assert all(band < 1 << width for band, (_, width) in zip(row, plan.bands, strict=True))


@settings(max_examples=50, deadline=None)
@given(pairs=st.lists(st.tuples(uint64s, uint64s), max_size=20), signed=st.booleans())
def test_hamming_distance_is_popcount_of_xor(pairs: list[tuple[int, int]], signed: bool) -> None:
    a = to_array([p[0] for p in pairs], signed)
    b = to_array([p[1] for p in pairs], not signed)
    distances = hamming_distance(a, b)
    assert distances.dtype == np.uint8
    assert distances.tolist() == [bin(x ^ y).count("1") for x, y in pairs]
