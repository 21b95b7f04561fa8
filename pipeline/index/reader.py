"""Reading a built kNN index: search by vector, the stored embedding of a uid, every indexed uid.

The explorer's handle on ``DIR/index/``: :meth:`KnnIndex.open` loads ``KIND.faiss`` (with the
``nprobe``/``efSearch`` the job tuned) and its uids; :meth:`KnnIndex.search` re-ranks an IVF-PQ
index's candidates by exact cosine with their stored vectors (:mod:`pipeline.index.vectors`:
memory-mapped from ``scores/embeddings/``, staged to a local cache first for a remote dataset),
as the job did when it measured recall; :meth:`KnnIndex.embedding` reads the exact stored vector
of a uid from ``scores/embeddings/`` (one shard's file, kept once read).
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from pipeline.dataset import Dataset
from pipeline.errors import UserInputError
from pipeline.index import faiss_ops
from pipeline.index.inputs import load_embeddings
from pipeline.index.params import IndexParams
from pipeline.index.vectors import StoredVectors

INDEX_COMMAND = "spark-submit jobs/index.py --dataset {dir}"


class KnnIndex:
    """One built index (``kind`` ``image`` or ``text``) of a dataset; thread-safe for searches."""

    def __init__(self, dataset: Dataset, kind: str, index: Any, marker: dict[str, Any], uids: Any) -> None:
        self.dataset = dataset
        self.kind = kind
        self.model: str = marker["model"]
        self.pretrained: str = marker["pretrained"]
        self.dim: int = int(marker["dim"])
        self.ntotal: int = int(index.ntotal)
        self.recall_at_10: float = float(marker["recall_at_10"])
        self.params = IndexParams(**{k: v for k, v in marker["params"].items() if k != "factory"})
        self._index = index
        self._uids: list[str] = uids.column("uid").to_pylist()
        self._shard = np.asarray(uids.column("shard").to_numpy(), dtype=np.int64)
        self._row = np.asarray(uids.column("row").to_numpy(), dtype=np.int64)
        self._position: dict[str, int] | None = None
        self._shards: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()
        self._vectors = (
            StoredVectors.of_uids_table(dataset, kind, self._shard, self._row) if self.params.rerank else None
        )
        if marker.get("search_value"):
            faiss_ops.set_search_param(index, self.params, int(marker["search_value"]))

    @classmethod
    def open(cls, dataset: Dataset, kind: str = "image") -> KnnIndex:
        """The index of ``kind``; ``UserInputError`` naming the command to run when it is not built."""
        folder = dataset.index
        if not dataset.storage.exists(*folder.marker(kind)):
            command = INDEX_COMMAND.format(dir=dataset.display()) + (" --text" if kind == "text" else "")
            raise UserInputError(f"{folder.display()} has no {kind} index: run {command}")
        marker = dataset.storage.read_json(*folder.marker(kind))
        index = faiss_ops.from_bytes(dataset.storage.read_bytes(*folder.index_file(kind)))
        uids = folder.uids(kind).read()
        if uids.num_rows != index.ntotal:
            raise UserInputError(
                f"{folder.uids(kind).path} has {uids.num_rows} uids for {index.ntotal} vectors: "
                f"rebuild with {INDEX_COMMAND.format(dir=dataset.display())} --overwrite"
            )
        return cls(dataset, kind, index, marker, uids)

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        """For each query row, up to ``k`` (uid, cosine similarity), best first. Queries are
        float32 ``(q, dim)``; they are L2-normalised here too (a no-op for unit vectors)."""
        matrix = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if matrix.shape[1] != self.dim:
            raise UserInputError(f"queries of width {matrix.shape[1]}, the {self.kind} index has {self.dim}")
        if k < 1 or len(matrix) == 0 or self.ntotal == 0:
            return [[] for _ in matrix]
        sims, ids = faiss_ops.search(
            self._index, self.params, faiss_ops.normalised(matrix), min(k, self.ntotal), self._vectors
        )
        return [
            [(self._uids[i], float(s)) for i, s in zip(row_ids, row_sims, strict=True) if i >= 0]
            for row_ids, row_sims in zip(ids, sims, strict=True)
        ]

    def embedding(self, uid: str) -> np.ndarray | None:
        """The stored vector of ``uid`` as float32 (saved as float16 by the score job, which
        L2-normalised it), or None when ``uid`` is not indexed."""
        with self._lock:
            if self._position is None:
                self._position = {u: i for i, u in enumerate(self._uids)}
            position = self._position.get(uid)
            if position is None:
                return None
            shard = int(self._shard[position])
            if shard not in self._shards:
                self._shards[shard] = load_embeddings(self.dataset, shard, self.kind)
            return self._shards[shard][int(self._row[position])].copy()

    def uids(self) -> list[str]:
        """Every indexed uid, in index order."""
        return list(self._uids)
