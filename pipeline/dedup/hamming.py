"""Exact Hamming-distance matching of 64-bit hashes (multi-index hashing), in numpy.

The question: which (query, index) pairs of 64-bit hashes differ in at most ``d`` bits? Brute force
compares every pair; with billions of queries and millions of index hashes that is far too much.

Generalised pigeonhole: split the 64 bits into ``m`` disjoint bands. If two hashes are within
``d``, their band distances sum to at most ``d``, so some band is within ``r = floor(d / m)``.
Hence every match is found by:

1. index side, built once: in each band, every index hash is entered under its band value XOR every
   mask of popcount <= r (the "expansion"), in a table sorted by that key (a dense offset table
   for bands of at most 24 bits, otherwise sorted unique keys and ``searchsorted``);
2. query side: one exact lookup of the query's band value per band gives the candidates;
3. every candidate is verified with a 64-bit popcount, and pairs found in several bands are
   reported once.

Nothing is approximate: a pair within ``d`` is always a candidate, and only verified pairs are
returned. :func:`plan_bands` picks ``m`` with a cost model (see there). With one band (``m = 1``)
the band is the whole hash: radius 0 means an exact-equality lookup, a larger radius means
comparing every pair, which the cost model picks when the index is tiny or ``d`` is so large that
no banding would produce fewer candidates than there are index hashes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

HASH_BITS = 64
MAX_DISTANCE = HASH_BITS
DENSE_MAX_BITS = 24  # dense offset tables hold 2**width + 1 offsets: 64 MiB (int32) at 24 bits
_DENSE_SLACK = 16  # ... and only where that is at most 16 offsets per expansion row (+ 64 Ki)
MAX_INDEX_BYTES = 4 << 30  # plans whose index would be larger are a last resort (it is broadcast)

# Cost model, in nanoseconds of one core with numpy (measured on a shared 2-core x86 VM; rough on
# purpose: the plans it chooses between differ by orders of magnitude, not by small factors).
_ROW_NS = 40.0  # build one expansion row (generate, count, scatter), amortised over the queries
_DENSE_ENTRY_NS = 2.0  # build one entry of a dense offset table
_DENSE_LOOKUP_NS = 15.0  # one query, one band: band value, two offset reads, candidate ranges
_SORTED_LOOKUP_NS = 5.0  # ... per binary-search level when the band uses sorted keys
_CANDIDATE_NS = 15.0  # generate and verify one candidate pair
_PAIR_NS = 1.5  # one pair in the all-pairs comparison (xor, popcount, compare)
_BRUTE_QUERY_NS = 50.0  # per query overhead of the all-pairs comparison

DEFAULT_CHUNK_SIZE = 1 << 17  # queries per chunk
_CANDIDATE_BUDGET = 1 << 21  # candidate pairs verified at once: ~50 MiB of temporaries


@dataclass(frozen=True)
class BandPlan:
    """How the 64 bits are split for the multi-index search.

    ``bands`` are (bit offset, bit width) pairs, bit 0 being the least significant; together they
    cover all 64 bits, each bit once. ``radius`` is the per-band search radius, always
    ``max_distance // len(bands)``, which by the pigeonhole argument finds every match.
    """

    bands: tuple[tuple[int, int], ...]
    radius: int
    max_distance: int

    def __post_init__(self) -> None:
        _check_distance(self.max_distance)
        if not self.bands:
            raise ValueError("a band plan needs at least one band")
        covered = 0
        for offset, width in self.bands:
            if width < 1 or offset < 0 or offset + width > HASH_BITS:
                raise ValueError(f"band ({offset}, {width}) does not lie within 64 bits")
            bits = ((1 << width) - 1) << offset
            if covered & bits:
                raise ValueError(f"band ({offset}, {width}) overlaps another band")
            covered |= bits
        if covered != (1 << HASH_BITS) - 1:
            raise ValueError("the bands do not cover all 64 bits")
        if self.radius != self.max_distance // len(self.bands):
            raise ValueError(
                f"radius must be max_distance // bands = {self.max_distance // len(self.bands)}, "
                f"got {self.radius}"
            )

    @property
    def brute_force(self) -> bool:
        """One band with a non-zero radius: every pair is compared (no enumeration of neighbours)."""
        return len(self.bands) == 1 and self.radius > 0


def _check_distance(max_distance: int) -> None:
    if not 0 <= max_distance <= MAX_DISTANCE:
        raise ValueError(f"max_distance must be in 0..{MAX_DISTANCE}, got {max_distance}")


def _ball(width: int, radius: int) -> int:
    """Number of ``width``-bit masks of popcount <= ``radius``."""
    return sum(math.comb(width, k) for k in range(min(radius, width) + 1))


def _widths(m: int) -> list[int]:
    base, extra = divmod(HASH_BITS, m)
    # Wider bands last, so they hold the high bits (any order is equally exact).
    return [base] * (m - extra) + [base + 1] * extra


def _dense(width: int, rows: int) -> bool:
    """Whether a band gets a dense offset table (else sorted keys and binary search)."""
    return width <= DENSE_MAX_BITS and (1 << width) <= _DENSE_SLACK * rows + (1 << 16)


def _plan_cost(n_index: int, n_queries: int, max_distance: int, m: int) -> tuple[float, int]:
    """(estimated nanoseconds, estimated index bytes) of searching with ``m`` equal-ish bands."""
    radius = max_distance // m
    if m == 1 and radius > 0:
        return _PAIR_NS * n_queries * n_index + _BRUTE_QUERY_NS * n_queries, 8 * n_index
    cost = 0.0
    nbytes = 8 * n_index
    for width in _widths(m):
        rows = n_index * _ball(width, radius)
        cost += _ROW_NS * rows
        offset_bytes = 4 if rows < 1 << 31 else 8
        if _dense(width, rows):
            cost += _DENSE_ENTRY_NS * (1 << width) + _DENSE_LOOKUP_NS * n_queries
            nbytes += 4 * rows + offset_bytes * ((1 << width) + 1)
        else:
            cost += _SORTED_LOOKUP_NS * n_queries * max(1.0, math.log2(max(rows, 1)))
            nbytes += (4 + 8 + offset_bytes) * rows  # ids, and at worst one key per row
        # Uniform hashes: a band value is hit by a given index hash with probability ball / 2**width.
        cost += _CANDIDATE_NS * n_queries * rows / (1 << width)
    return cost, nbytes


def plan_bands(n_index: int, n_queries: int, max_distance: int) -> BandPlan:
    """Choose the band split for ``n_index`` index hashes searched by ``n_queries`` queries.

    Every ``m`` from 1 to ``max_distance + 1`` is costed (more bands than that only narrows bands
    without lowering the radius below 0) with bands of ``64 // m`` or ``64 // m + 1`` bits and
    radius ``r = max_distance // m``. The estimated time, in nanoseconds, is the sum of:

    - expansion: ``n_index * V(w, r)`` rows per band of width ``w`` (``V`` = number of masks of
      popcount <= ``r`` over ``w`` bits), each generated and sorted once, plus ``2**w`` entries
      for a dense offset table;
    - lookups: one per query and band, constant time for a dense table, ``log2(rows)`` levels of
      binary search otherwise;
    - candidates: ``n_queries * n_index * V(w, r) / 2**w`` per band, the expected count for
      uniformly distributed hashes, each generated and verified with a popcount.

    ``m = 1`` with a radius above 0 stands for comparing every pair (``n_queries * n_index``
    popcounts), which wins for tiny indexes and for large distances. Plans whose index would
    exceed ``MAX_INDEX_BYTES`` (it is broadcast to every executor) are only chosen when every
    plan does, and then the smallest.
    Real pHashes are clustered, so real candidate counts are higher than the estimate; that
    costs time, never exactness.
    """
    _check_distance(max_distance)
    if n_index < 0 or n_queries < 0:
        raise ValueError("n_index and n_queries must not be negative")
    options = []
    for m in range(1, min(HASH_BITS, max_distance + 1) + 1):
        cost, nbytes = _plan_cost(n_index, n_queries, max_distance, m)
        too_big = nbytes > MAX_INDEX_BYTES
        options.append((too_big, nbytes if too_big else 0, cost, m))
    m = min(options)[-1]
    bands = []
    offset = 0
    for width in _widths(m):
        bands.append((offset, width))
        offset += width
    return BandPlan(bands=tuple(bands), radius=max_distance // m, max_distance=max_distance)


def _as_uint64(hashes: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(hashes)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of hashes, got shape {array.shape}")
    if array.size == 0:
        return np.zeros(0, dtype=np.uint64)
    if array.dtype == np.uint64:
        return array
    if array.dtype == np.int64:
        return array.view(np.uint64)  # two's complement storage of unsigned hashes
    if array.dtype.kind in "iu":
        if array.dtype.kind == "i" and array.min() < 0:
            raise ValueError(f"{name}: negative {array.dtype} values cannot be 64-bit hashes")
        return array.astype(np.uint64)
    raise TypeError(f"{name} must hold uint64 or int64 hashes, got dtype {array.dtype}")


def band_values(hashes: np.ndarray, plan: BandPlan) -> np.ndarray:
    """The value of every band of every hash: shape (n, number of bands), uint64."""
    values = _as_uint64(hashes, "hashes")
    out = np.empty((values.size, len(plan.bands)), dtype=np.uint64)
    for j, (offset, width) in enumerate(plan.bands):
        out[:, j] = _band(values, offset, width)
    return out


def _band(values: np.ndarray, offset: int, width: int) -> np.ndarray:
    shifted = values >> np.uint64(offset) if offset else values
    if width == HASH_BITS:
        return shifted.copy() if shifted is values else shifted
    return shifted & np.uint64((1 << width) - 1)


def neighbour_masks(width: int, radius: int) -> np.ndarray:
    """Every ``width``-bit XOR mask of popcount <= ``radius``, ascending (uint64; 0 first)."""
    if not 1 <= width <= HASH_BITS:
        raise ValueError(f"width must be in 1..{HASH_BITS}, got {width}")
    if radius < 0:
        raise ValueError(f"radius must not be negative, got {radius}")
    radius = min(radius, width)
    count = _ball(width, radius)
    if count > 1 << 31:
        raise ValueError(f"{count} masks of popcount <= {radius} over {width} bits is too many")
    levels = [np.zeros(1, dtype=np.uint64)]
    highest = [np.full(1, -1, dtype=np.int16)]  # highest set bit of each mask of the last level
    for _ in range(radius):
        masks, tops = [], []
        # Extend every mask of popcount k by one bit above its highest: each mask made once.
        for bit in range(width):
            parents = levels[-1][highest[-1] < bit]
            masks.append(parents | np.uint64(1 << bit))
            tops.append(np.full(parents.size, bit, dtype=np.int16))
        levels.append(np.concatenate(masks))
        highest.append(np.concatenate(tops))
    return np.sort(np.concatenate(levels))


def _popcount(values: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):  # numpy >= 2
        return np.bitwise_count(values)
    as_bytes = values.view(np.uint8).reshape(values.shape + (8,))
    return _BYTE_POPCOUNT[as_bytes].sum(axis=-1, dtype=np.uint8)


_BYTE_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def hamming_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise (broadcast) ``popcount(a ^ b)`` of uint64 or int64 hashes, as uint8."""
    left = np.asarray(a)
    right = np.asarray(b)
    left = left.view(np.uint64) if left.dtype == np.int64 else left.astype(np.uint64, copy=False)
    right = right.view(np.uint64) if right.dtype == np.int64 else right.astype(np.uint64, copy=False)
    return np.asarray(_popcount(np.bitwise_xor(left, right)), dtype=np.uint8)


class _BandTable:
    """One band of the index: expansion rows grouped by key, as index ids."""

    def __init__(self, values: np.ndarray, offset: int, width: int, radius: int) -> None:
        self.offset = offset
        self.width = width
        masks = neighbour_masks(width, radius)
        rows = values.size * masks.size
        self.dense = _dense(width, rows)
        self.offset_dtype = np.int32 if rows < 1 << 31 else np.int64
        keys = _band(values, offset, width)
        if self.dense:
            self.keys = None
            self.starts, self.ids = self._dense_table(keys, masks)
        else:
            self.keys, self.starts, self.ids = self._sorted_table(keys, masks)

    def _dense_table(self, keys: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Counting sort: offsets from a histogram, then each mask's rows scattered into place.

        Several times faster than sorting the expansion: no comparison sort, and each step works
        on ``n`` rows. Rows of one mask only collide on equal band values, which the index's
        band-value order puts next to each other, so each gets its rank within its run.
        """
        n = keys.size
        dtype = self.offset_dtype
        order = np.argsort(keys, kind="stable")
        ordered = keys[order].astype(np.intp)
        ids = order.astype(np.uint32)
        first = np.ones(n, dtype=bool)
        np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
        run_start = np.flatnonzero(first)
        run_length = np.diff(np.append(run_start, n)).astype(dtype)
        has_duplicates = run_start.size != n
        rank = (np.arange(n) - np.repeat(run_start, run_length)).astype(dtype)
        masks = masks.astype(np.intp)
        size = 1 << self.width
        counts = np.zeros(size, dtype=np.int64)
        block = max(1, (1 << 22) // max(n, 1))
        for first_mask in range(0, masks.size, block):
            chunk = ordered[None, :] ^ masks[first_mask : first_mask + block, None]
            counts += np.bincount(chunk.ravel(), minlength=size)
        starts = np.zeros(size + 1, dtype=dtype)
        np.cumsum(counts, out=starts[1:])
        cursor = starts[:-1].copy()
        table = np.empty(n * masks.size, dtype=np.uint32)
        for mask in masks:
            target = ordered ^ mask
            slot = cursor[target]
            if has_duplicates:
                slot += rank
                cursor[target[run_start]] += run_length
            else:
                cursor[target] = slot + 1
            table[slot] = ids
        return starts, table

    def _sorted_table(self, keys: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sorted unique keys, their first rows and the rows' index ids (wide bands)."""
        n = keys.size
        if self.width <= 32:
            # One uint64 sort of (key << 32 | id) is several times faster than an argsort.
            combined = keys[:, None] ^ masks[None, :]
            combined <<= np.uint64(32)
            combined |= np.arange(n, dtype=np.uint64)[:, None]
            combined = combined.ravel()
            combined.sort()
            ids = (combined & np.uint64(0xFFFFFFFF)).astype(np.uint32)
            sorted_keys = combined >> np.uint64(32)
            del combined
        else:  # only the whole-hash band of an exact (radius 0) lookup
            order = np.argsort(keys, kind="stable")
            ids = order.astype(np.uint32)
            sorted_keys = keys[order]
        first = np.ones(sorted_keys.size, dtype=bool)
        np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=first[1:])
        starts = np.append(np.flatnonzero(first), sorted_keys.size).astype(self.offset_dtype)
        return sorted_keys[first], starts, ids

    def ranges(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(first row, row count) in :attr:`ids` of each query's band value."""
        values = _band(queries, self.offset, self.width)
        if self.dense:
            where = values.astype(np.intp)
            start = self.starts[where]
            return start, self.starts[where + 1] - start
        if self.keys.size == 0:
            return np.zeros(queries.size, dtype=self.starts.dtype), np.zeros(queries.size, self.starts.dtype)
        where = np.searchsorted(self.keys, values)
        np.minimum(where, self.keys.size - 1, out=where)
        start = self.starts[where]
        count = self.starts[where + 1] - start
        count[self.keys[where] != values] = 0
        return start, count

    @property
    def nbytes(self) -> int:
        return self.ids.nbytes + self.starts.nbytes + (0 if self.keys is None else self.keys.nbytes)


class HammingIndex:
    """Exact search of 64-bit hashes within ``max_distance`` bits of an index set.

    Built once from the index side (typically the benchmark hashes), then queried in chunks with
    any number of hashes (the corpus). Picklable, so it can be broadcast by Spark; :attr:`nbytes`
    is its size.
    """

    def __init__(self, hashes: np.ndarray, max_distance: int, plan: BandPlan | None = None) -> None:
        """Index ``hashes`` (uint64 or int64, two's complement) for searches within ``max_distance``.

        Without a ``plan``, :func:`plan_bands` chooses one assuming 1000 queries per index hash
        (at least 10 million): the corpus side is the large one.
        """
        _check_distance(max_distance)
        self.hashes = np.ascontiguousarray(_as_uint64(hashes, "hashes"))
        if self.hashes.size >= 1 << 32:
            raise ValueError(f"at most 2**32 - 1 index hashes, got {self.hashes.size}")
        if plan is None:
            plan = plan_bands(self.hashes.size, max(10_000_000, 1000 * self.hashes.size), max_distance)
        elif plan.max_distance != max_distance:
            raise ValueError(f"plan is for max_distance {plan.max_distance}, not {max_distance}")
        self.plan = plan
        self.max_distance = max_distance
        self.tables: list[_BandTable] = []
        if not plan.brute_force:
            self.tables = [_BandTable(self.hashes, o, w, plan.radius) for o, w in plan.bands]
        log.debug("indexed %d hashes with %s (%d bytes)", self.hashes.size, plan, self.nbytes)

    def __len__(self) -> int:
        return int(self.hashes.size)

    @property
    def nbytes(self) -> int:
        """Memory held by the index (hashes and band tables), in bytes."""
        return int(self.hashes.nbytes + sum(t.nbytes for t in self.tables))

    def search(
        self, queries: np.ndarray, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every pair within ``max_distance``: (query_idx int64, index_idx int64, distance uint8).

        Each pair appears once, sorted by (query_idx, index_idx). Queries are processed
        ``chunk_size`` at a time and candidates in bounded batches, so memory stays bounded
        however many queries and matches there are (the output aside).
        """
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        values = _as_uint64(queries, "queries")
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        if self.hashes.size:
            for first in range(0, values.size, chunk_size):
                chunk = np.ascontiguousarray(values[first : first + chunk_size])
                q, i, d = self._search_chunk(chunk)
                parts.append((q + first, i, d))
        if not parts:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.uint8)
        return tuple(np.concatenate(column) for column in zip(*parts, strict=True))  # type: ignore[return-value]

    def _search_chunk(self, chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n_index = self.hashes.size
        if self.plan.brute_force:
            q, i = self._all_pairs(chunk)
        else:
            found_q, found_i = [], []
            for table in self.tables:
                start, count = table.ranges(chunk)
                for q, i in self._verify(chunk, table, start, count):
                    found_q.append(q)
                    found_i.append(i)
            if not found_q:
                return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.uint8)
            q = np.concatenate(found_q)
            i = np.concatenate(found_i)
            if len(self.tables) > 1:
                # A pair can be found in several bands; unique() also sorts by (query, index).
                key = np.unique(q * n_index + i)
                q, i = np.divmod(key, n_index)
        distance = hamming_distance(chunk[q], self.hashes[i])
        return q, i, distance

    def _verify(
        self, chunk: np.ndarray, table: _BandTable, start: np.ndarray, count: np.ndarray
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (query, index) int64 pairs within distance among the band's candidates, batched."""
        present = np.flatnonzero(count)
        if present.size == 0:
            return
        start = start[present].astype(np.int64)
        count = count[present].astype(np.int64)
        ends = np.cumsum(count)
        lo = 0
        while lo < present.size:
            base = ends[lo - 1] if lo else 0
            hi = max(lo + 1, int(np.searchsorted(ends, base + _CANDIDATE_BUDGET, side="right")))
            cnt = count[lo:hi]
            total = int(ends[hi - 1] - base)
            # Row positions of all candidates: runs start[k] .. start[k] + cnt[k] - 1, flattened.
            run_starts = ends[lo:hi] - cnt - base
            positions = np.repeat(start[lo:hi] - run_starts, cnt)
            positions += np.arange(total, dtype=np.int64)
            index_ids = table.ids[positions]
            del positions
            diff = self.hashes[index_ids]
            diff ^= np.repeat(chunk[present[lo:hi]], cnt)
            hit = np.flatnonzero(_popcount(diff) <= self.max_distance)
            if hit.size:
                owner = np.searchsorted(ends[lo:hi] - base, hit, side="right")
                yield present[lo:hi][owner].astype(np.int64), index_ids[hit].astype(np.int64)
            lo = hi

    def _all_pairs(self, chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n_index = self.hashes.size
        block = max(1, _CANDIDATE_BUDGET // n_index)
        found_q, found_i = [], []
        for first in range(0, chunk.size, block):
            diff = chunk[first : first + block, None] ^ self.hashes[None, :]
            q, i = np.nonzero(_popcount(diff) <= self.max_distance)
            found_q.append(q + first)
            found_i.append(i)
        return np.concatenate(found_q).astype(np.int64), np.concatenate(found_i).astype(np.int64)
