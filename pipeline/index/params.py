"""Index parameters from the corpus size and a memory budget (pure; autofaiss's rules, our thresholds).

* up to :data:`FLAT_MAX_VECTORS` vectors (and when they fit the budget): ``Flat``, exact inner
  product on L2-normalised vectors. The threshold is measured by ``benchmarks/index.py``
  (docs/benchmarks.md, "kNN index"): below it an exact query costs little and nothing is lost;
* above it, ``HNSW{M},Flat`` when the graph and the float32 vectors fit the budget, with
  ``M = min(32, (budget / (4 N) - dim) / 2)`` and at least 8 (autofaiss's rule);
* otherwise ``IVF{nlist},PQ{m}x{nbits}``: ``nlist`` the power of two nearest ``4 sqrt(N)`` (at
  most ``N / 39`` so k-means has 39 training points a list), ``m`` the largest code size that
  divides ``dim`` and whose codes (``m`` bytes and an 8-byte id a vector) and coarse centroids
  fit the budget. Its codes lose the ranking of close neighbours (recall@10 0.5-0.85 on clustered
  vectors whatever ``nprobe``), so by default its search re-ranks ``RERANK_FACTOR`` times the
  results asked for by exact cosine over the stored float16 vectors, read from disk (no RAM;
  ``--no-rerank`` turns it off). Measured against faiss's in-memory ``Refine(SQ8)`` by
  ``benchmarks/index.py`` (docs/benchmarks.md, "kNN index").

``--index-type`` forces a kind; the numbers are still chosen here.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any

from pipeline.errors import UserInputError

INDEX_TYPES = ("auto", "flat", "hnsw", "ivfpq")
# Measured (benchmarks/index.py, docs/benchmarks.md "kNN index"): up to this many vectors the
# exact index is chosen; above it an exact query costs more than an approximate one by a wide
# margin, while HNSW keeps recall@10 near 1.
FLAT_MAX_VECTORS = 50_000
HNSW_MAX_M = 32
HNSW_MIN_M = 8
# k-means wants at least this many training points per centroid (faiss warns below).
POINTS_PER_CENTROID = 39
# Training sample kept at most this many points a centroid (faiss samples down to 256 itself).
MAX_POINTS_PER_CENTROID = 256
PQ_CODE_SIZES = (64, 48, 32, 24, 16, 12, 8, 4)
ID_BYTES = 8
# IVF-PQ re-ranking: candidates asked of the index per result wanted, and at most this many
# candidates a query (measured: docs/benchmarks.md "kNN index", re-ranking).
RERANK_FACTOR = 10
RERANK_MAX_CANDIDATES = 1000
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_memory(text: str) -> int:
    """Bytes of a size written ``4G``, ``512M``, ``1.5GB``, ``1000000`` (binary units)."""
    found = _SIZE.match(str(text))
    if not found:
        raise UserInputError(f"--max-index-memory: {text!r} is not a size (write e.g. 4G, 512M)")
    size = int(float(found.group(1)) * _UNITS[found.group(2).upper()])
    if size <= 0:
        raise UserInputError(f"--max-index-memory must be positive, got {text!r}")
    return size


@dataclass(frozen=True)
class IndexParams:
    """What the index is: its kind and the numbers of that kind (0 where they do not apply)."""

    kind: str  # flat | hnsw | ivfpq
    dim: int
    hnsw_m: int = 0
    nlist: int = 0
    pq_m: int = 0
    pq_bits: int = 0
    train_size: int = 0  # vectors the IVF-PQ quantizer and codebooks are trained on
    estimated_bytes: int = 0
    rerank: int = 0  # IVF-PQ: candidates per result re-ranked by exact cosine from disk (0: off)

    @property
    def factory(self) -> str:
        """The ``faiss.index_factory`` key."""
        if self.kind == "flat":
            return "Flat"
        if self.kind == "hnsw":
            return f"HNSW{self.hnsw_m},Flat"
        # np: no polysemous training (slow with long codes, and unused by a plain search)
        return f"IVF{self.nlist},PQ{self.pq_m}x{self.pq_bits}np"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "factory": self.factory}


def flat_bytes(vectors: int, dim: int) -> int:
    return vectors * dim * 4


def hnsw_bytes(vectors: int, dim: int, m: int) -> int:
    """float32 vectors and about ``2 M`` 4-byte links a vector (the base layer)."""
    return vectors * (dim * 4 + 2 * m * 4)


def ivfpq_bytes(vectors: int, dim: int, nlist: int, pq_m: int) -> int:
    """Codes and ids of every vector, and the coarse centroids."""
    return vectors * (pq_m + ID_BYTES) + nlist * dim * 4


def nlist_for(vectors: int) -> int:
    """The power of two nearest ``4 sqrt(N)``, at most ``N / 39`` (and at least 1)."""
    wanted = 2 ** round(math.log2(max(1.0, 4 * math.sqrt(vectors))))
    return max(1, min(wanted, vectors // POINTS_PER_CENTROID))


def rerank_candidates(params: IndexParams, k: int, ntotal: int) -> int:
    """Candidates to ask the index for when ``k`` results are wanted: ``k`` without re-ranking,
    else ``rerank * k`` capped at :data:`RERANK_MAX_CANDIDATES` (never below ``k``) and ``ntotal``."""
    wanted = k if not params.rerank else max(k, min(params.rerank * k, RERANK_MAX_CANDIDATES))
    return max(0, min(wanted, ntotal))


def choose_params(vectors: int, dim: int, index_type: str, memory: int, rerank: bool = True) -> IndexParams:
    """The index for ``vectors`` vectors of width ``dim`` within ``memory`` bytes.

    ``index_type`` ``auto`` follows the rules of the module docstring; ``flat``, ``hnsw`` or
    ``ivfpq`` force the kind; ``rerank`` re-ranks IVF-PQ's candidates from the stored vectors (the
    other kinds are exact or near it, and never re-rank). Raises ``UserInputError`` when the
    chosen kind cannot fit.
    """
    if index_type not in INDEX_TYPES:
        raise UserInputError(f"--index-type must be one of {', '.join(INDEX_TYPES)}, got {index_type!r}")
    if vectors < 1 or dim < 1:
        raise UserInputError(f"nothing to index: {vectors} vectors of width {dim}")
    if index_type == "flat" or (
        index_type == "auto" and vectors <= FLAT_MAX_VECTORS and flat_bytes(vectors, dim) <= memory
    ):
        return _fitting(IndexParams("flat", dim, estimated_bytes=flat_bytes(vectors, dim)), memory)
    if index_type in ("auto", "hnsw"):
        m = int((memory / (4 * vectors) - dim) // 2)
        if m >= HNSW_MIN_M or index_type == "hnsw":
            m = max(HNSW_MIN_M, min(HNSW_MAX_M, m))
            return _fitting(
                IndexParams("hnsw", dim, hnsw_m=m, estimated_bytes=hnsw_bytes(vectors, dim, m)), memory
            )
    return _ivfpq(vectors, dim, memory, RERANK_FACTOR if rerank else 0)


def _ivfpq(vectors: int, dim: int, memory: int, rerank: int) -> IndexParams:
    nlist = nlist_for(vectors)
    train = min(vectors, nlist * MAX_POINTS_PER_CENTROID)
    # Each sub-quantizer has 2**bits centroids trained on the sample: no more centroids than points.
    # 39 points a centroid where the sample allows, and never fewer than 16 centroids.
    bits = min(8, max(min(4, int(math.log2(train))), int(math.log2(max(2, train // POINTS_PER_CENTROID)))))
    sizes = [m for m in PQ_CODE_SIZES if dim % m == 0 and m <= dim] or [1]
    for m in sizes:
        size = ivfpq_bytes(vectors, dim, nlist, m)
        if size <= memory:
            return IndexParams(
                "ivfpq",
                dim,
                nlist=nlist,
                pq_m=m,
                pq_bits=bits,
                train_size=train,
                estimated_bytes=size,
                rerank=rerank,
            )
    smallest = ivfpq_bytes(vectors, dim, nlist, sizes[-1])
    raise UserInputError(
        f"{vectors} vectors of width {dim} need at least {smallest / 2**20:.1f} MiB as IVF-PQ "
        f"(PQ{sizes[-1]}); raise --max-index-memory"
    )


def _fitting(params: IndexParams, memory: int) -> IndexParams:
    if params.estimated_bytes > memory:
        raise UserInputError(
            f"a {params.kind} index of these vectors needs about {params.estimated_bytes / 2**20:.1f} MiB, "
            f"more than --max-index-memory ({memory / 2**20:.1f} MiB): raise it or pass --index-type auto"
        )
    return params
