"""The exact stored vectors of index ids, read from ``scores/embeddings/`` without holding them in RAM.

IVF-PQ re-ranks its candidates with these (:func:`pipeline.index.faiss_ops.search`). Index ids
follow the score shards in order, so an id is (shard, row) from each shard's first id. Each
shard's ``NNNNN_KIND.npy`` (float16) is memory-mapped: only the rows asked for are read, and the
operating system's page cache keeps the ones read often. A remote dataset's files are staged
once, on first use, to the local cache of :mod:`pipeline.remote_cache` (``$CORPUSFORGE_CACHE``;
re-staged when the remote file changes) and memory-mapped from there: a random read of a
kilobyte per candidate would cost a network round trip each.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from pipeline.dataset import Dataset
from pipeline.remote_cache import stage


class StoredVectors:
    """Rows of index ids from the score shards' embeddings (thread-safe)."""

    def __init__(self, dataset: Dataset, kind: str, shards: Sequence[int], first_ids: Sequence[int]) -> None:
        self.dataset = dataset
        self.kind = kind
        self._shards = [int(s) for s in shards]
        self._first = np.asarray(first_ids, dtype=np.int64)
        self._maps: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    @classmethod
    def of_uids_table(cls, dataset: Dataset, kind: str, shard: np.ndarray, row: np.ndarray) -> StoredVectors:
        """From an index's uids table (shard and row of each id, shards in order, rows 0..)."""
        if len(shard) == 0:
            return cls(dataset, kind, [], [])
        starts = np.flatnonzero(np.r_[True, shard[1:] != shard[:-1]])
        expected = np.arange(len(shard)) - np.repeat(starts, np.diff(np.r_[starts, len(shard)]))
        if not np.array_equal(row, expected) or len(set(shard[starts].tolist())) != len(starts):
            raise ValueError("the uids table's shard and row columns do not follow the score shards in order")
        return cls(dataset, kind, shard[starts].tolist(), starts.tolist())

    def _map(self, shard: int) -> np.ndarray:
        with self._lock:
            if shard not in self._maps:
                parts = self.dataset.scores.shard(shard).embeddings_file(self.kind)
                # A local file as it is; a remote one staged to the local cache once.
                path = stage(self.dataset.storage.path(*parts), "--dataset")
                self._maps[shard] = np.load(path, mmap_mode="r", allow_pickle=False)
            return self._maps[shard]

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of ``ids`` (any order, repeats allowed) as float32, L2-normalised."""
        ids = np.asarray(ids, dtype=np.int64)
        dim = None
        out: np.ndarray | None = None
        positions = np.searchsorted(self._first, ids, side="right") - 1
        for position in np.unique(positions):
            mine = np.flatnonzero(positions == position)
            local = ids[mine] - self._first[position]
            order = np.argsort(local, kind="stable")  # ascending rows: sequential reads of the map
            block = np.asarray(self._map(self._shards[int(position)])[local[order]], dtype=np.float32)
            if out is None:
                dim = block.shape[1]
                out = np.empty((len(ids), dim), dtype=np.float32)
            out[mine[order]] = block
        if out is None:
            return np.empty((0, 0), dtype=np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)
