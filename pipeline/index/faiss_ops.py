"""faiss operations of the index job: make and train an index, exact neighbours, recall, tuning.

Every index uses inner product on L2-normalised vectors, so a distance is the cosine similarity.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.index.params import IndexParams, rerank_candidates

if TYPE_CHECKING:
    from pipeline.index.vectors import StoredVectors

K = 10
# Exact neighbours kept per query: the top K and the ties just below it (see recall_at_k).
EXACT_KEPT = 2 * K
# Two similarities this close count as a tie (float16 embeddings repeat values).
TIE = 1e-4
# Candidate vectors gathered at once while re-ranking (bounds memory: 8192 x 512 x 4 = 16 MiB).
RERANK_ROWS = 8192
NPROBES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
EF_SEARCHES = (16, 32, 64, 128, 256, 512, 1024)


def normalised(matrix: np.ndarray) -> np.ndarray:
    """float32 rows of unit length (zero rows stay zero)."""
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return np.ascontiguousarray(matrix / np.maximum(norms, 1e-12))


def empty_index(params: IndexParams, train: np.ndarray | None = None, seed: int = 0) -> Any:
    """A new index of ``params`` (trained on ``train`` when its kind needs it)."""
    import faiss

    index = faiss.index_factory(params.dim, params.factory, faiss.METRIC_INNER_PRODUCT)
    if params.kind == "ivfpq":
        if train is None or len(train) == 0:
            raise ValueError("an IVF-PQ index needs training vectors")
        index.cp.seed = seed
        index.pq.cp.seed = seed
        index.train(np.ascontiguousarray(train, dtype=np.float32))
    return index


def part_index(params: IndexParams, trained: Any) -> Any:
    """An empty index a shard's vectors are added to: a copy of the trained one, or a flat index
    for HNSW (the graph is built once over every vector, on the driver)."""
    import faiss

    if params.kind == "ivfpq":
        return faiss.clone_index(trained)
    return faiss.IndexFlatIP(params.dim)


def merge(params: IndexParams, trained: Any, parts: Iterable[Any]) -> Any:
    """One index of every part, in order (ids 0.. across the parts in that order)."""
    import faiss

    if params.kind == "hnsw":
        merged = empty_index(params)
        for part in parts:
            if part.ntotal:
                merged.add(part.reconstruct_n(0, part.ntotal))
        return merged
    merged = faiss.clone_index(trained) if params.kind == "ivfpq" else faiss.IndexFlatIP(params.dim)
    for part in parts:
        if part.ntotal:
            # Flat ids are positions already; IVF ids are shifted past the vectors merged so far.
            merged.merge_from(part, merged.ntotal if params.kind == "ivfpq" else 0)
    return merged


def to_bytes(index: Any) -> bytes:
    import faiss

    return faiss.serialize_index(index).tobytes()


def from_bytes(data: bytes) -> Any:
    import faiss

    return faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


@dataclass
class ExactNeighbours:
    """The exact top :data:`EXACT_KEPT` (ids, similarities) of each query, best first."""

    ids: np.ndarray  # (q, EXACT_KEPT) int64, -1 where fewer vectors
    sims: np.ndarray  # (q, EXACT_KEPT) float32, -inf where fewer vectors

    @classmethod
    def empty(cls, queries: int) -> ExactNeighbours:
        return cls(
            np.full((queries, EXACT_KEPT), -1, dtype=np.int64),
            np.full((queries, EXACT_KEPT), -np.inf, dtype=np.float32),
        )

    def add(self, queries: np.ndarray, block: np.ndarray, first_id: int) -> None:
        """Take the vectors ``block`` (ids ``first_id``..) into account."""
        if len(block) == 0 or len(queries) == 0:
            return
        sims = queries @ block.T
        ids = np.broadcast_to(np.arange(first_id, first_id + len(block)), sims.shape)
        all_sims = np.concatenate([self.sims, sims], axis=1)
        all_ids = np.concatenate([self.ids, ids], axis=1)
        keep = np.argsort(-all_sims, axis=1, kind="stable")[:, :EXACT_KEPT]
        self.sims = np.take_along_axis(all_sims, keep, axis=1)
        self.ids = np.take_along_axis(all_ids, keep, axis=1)


def recall_at_k(found: np.ndarray, exact: ExactNeighbours, k: int = K) -> float:
    """Share of the exact top ``k`` that ``found`` (q, k ids) returns; an id tied with the k-th
    exact neighbour (similarity within :data:`TIE`) counts as one of them."""
    if len(found) == 0:
        return 1.0
    hits = 0
    wanted = 0
    for row, ids in enumerate(found[:, :k]):
        sims = exact.sims[row]
        valid = int(np.isfinite(sims).sum())
        top = min(k, valid)
        wanted += top
        if top == 0:
            continue
        kth = sims[top - 1]
        acceptable = {
            int(i) for i, s in zip(exact.ids[row], sims, strict=True) if np.isfinite(s) and s >= kth - TIE
        }
        hits += min(top, sum(1 for i in ids if int(i) in acceptable))
    return hits / wanted if wanted else 1.0


def set_search_param(index: Any, params: IndexParams, value: int) -> None:
    """``nprobe`` (IVF-PQ) or ``efSearch`` (HNSW); nothing for flat."""
    import faiss

    if params.kind == "ivfpq":
        faiss.extract_index_ivf(index).nprobe = value
    elif params.kind == "hnsw":
        index.hnsw.efSearch = value


def search_param(index: Any, params: IndexParams) -> int:
    import faiss

    if params.kind == "ivfpq":
        return int(faiss.extract_index_ivf(index).nprobe)
    if params.kind == "hnsw":
        return int(index.hnsw.efSearch)
    return 0


def search(
    index: Any, params: IndexParams, queries: np.ndarray, k: int, vectors: StoredVectors | None
) -> tuple[np.ndarray, np.ndarray]:
    """``(similarities, ids)`` of the ``k`` best of each (normalised) query, best first, ``-1``
    ids where fewer: the search the reader runs and the job's recall measures.

    With ``params.rerank`` (IVF-PQ) and ``vectors``, ``rerank * k`` candidates (at most
    :data:`~pipeline.index.params.RERANK_MAX_CANDIDATES`) are asked of the index and ranked by
    exact cosine with their stored vectors; the similarities returned are those exact ones.
    """
    wanted = rerank_candidates(params, k, int(index.ntotal))
    if wanted <= k or vectors is None:
        return index.search(queries, k)
    _, candidates = index.search(queries, wanted)
    sims = np.full((len(queries), k), -np.inf, dtype=np.float32)
    ids = np.full((len(queries), k), -1, dtype=np.int64)
    batch = max(1, RERANK_ROWS // wanted)
    for start in range(0, len(queries), batch):
        block = candidates[start : start + batch]
        unique, inverse = np.unique(block, return_inverse=True)
        inverse = inverse.reshape(block.shape)
        valid = unique >= 0
        stored = np.zeros((len(unique), queries.shape[1]), dtype=np.float32)
        stored[valid] = vectors.rows(unique[valid])
        exact = np.einsum("qcd,qd->qc", stored[inverse], queries[start : start + batch])
        exact[block < 0] = -np.inf
        order = np.argsort(-exact, axis=1, kind="stable")[:, :k]
        sims[start : start + len(block)] = np.take_along_axis(exact, order, axis=1)
        best = np.take_along_axis(block, order, axis=1)
        ids[start : start + len(block)] = np.where(np.isfinite(sims[start : start + len(block)]), best, -1)
    return sims, ids


def tune(
    index: Any,
    params: IndexParams,
    queries: np.ndarray,
    exact: ExactNeighbours,
    target: float,
    vectors: StoredVectors | None = None,
) -> tuple[int, float, list[dict[str, float]]]:
    """The smallest ``nprobe``/``efSearch`` reaching recall@10 ``target`` (else the best tried),
    set on ``index``; returns it, its recall@10 and every (value, recall) tried. Searches run
    through :func:`search` (re-ranked from ``vectors`` when ``params`` says so)."""
    if params.kind == "flat":
        _, found = search(index, params, queries, K, vectors)
        return 0, recall_at_k(found, exact), []
    values = [v for v in NPROBES if v <= params.nlist] if params.kind == "ivfpq" else list(EF_SEARCHES)
    tried: list[dict[str, float]] = []
    best = (values[0], -1.0)
    for value in values:
        set_search_param(index, params, value)
        _, found = search(index, params, queries, K, vectors)
        recall = recall_at_k(found, exact)
        tried.append({"value": value, "recall_at_10": round(recall, 4)})
        if recall > best[1] + 1e-9:
            best = (value, recall)
        if recall >= target:
            best = (value, recall)
            break
    set_search_param(index, params, best[0])
    return best[0], best[1], tried
