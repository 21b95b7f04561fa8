"""IVF-PQ re-ranking by exact cosine with the stored vectors (no Spark: a scratch dataset of two
score shards' embeddings written here)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from pipeline.dataset import Dataset
from pipeline.index import faiss_ops
from pipeline.index.options import IndexOptions
from pipeline.index.params import (
    RERANK_FACTOR,
    RERANK_MAX_CANDIDATES,
    IndexParams,
    choose_params,
    rerank_candidates,
)
from pipeline.index.vectors import StoredVectors

GIB = 2**30


def _clustered(size: int, dim: int, seed: int = 0) -> np.ndarray:
    """Tight clusters, where PQ codes cannot rank close neighbours (as in benchmarks/index.py)."""
    rng = np.random.default_rng(seed)
    centres = faiss_ops.normalised(rng.standard_normal((size // 40, dim)))
    members = centres[rng.integers(0, len(centres), size)]
    noise = rng.standard_normal((size, dim)).astype(np.float32) * (0.8 / np.sqrt(dim))
    return faiss_ops.normalised(members + noise)


def _saved(tmp_path: Path, vectors: np.ndarray, split: int) -> StoredVectors:
    """``vectors`` saved as score shards 00003 (rows :split) and 00007 (the rest), as float16."""
    embeddings = tmp_path / "dataset" / "scores" / "embeddings"
    embeddings.mkdir(parents=True)
    np.save(embeddings / "00003_image.npy", vectors[:split].astype(np.float16))
    np.save(embeddings / "00007_image.npy", vectors[split:].astype(np.float16))
    return StoredVectors(Dataset(str(tmp_path / "dataset")), "image", [3, 7], [0, split])


def test_rerank_is_on_for_ivfpq_only_and_can_be_turned_off() -> None:
    assert choose_params(10_000_000, 512, "auto", 4 * GIB).rerank == RERANK_FACTOR
    assert choose_params(10_000_000, 512, "auto", 4 * GIB, rerank=False).rerank == 0
    assert choose_params(1_000_000, 512, "auto", 4 * GIB).rerank == 0  # HNSW
    assert choose_params(1000, 512, "auto", 4 * GIB).rerank == 0  # flat
    assert IndexOptions(dataset="/d").rerank is True
    assert IndexOptions(dataset="/d", rerank=False).rerank is False


def test_candidates_are_k_times_the_factor_capped() -> None:
    params = IndexParams("ivfpq", 64, nlist=4, pq_m=8, pq_bits=8, rerank=RERANK_FACTOR)
    assert rerank_candidates(params, 10, 10**6) == 10 * RERANK_FACTOR
    assert rerank_candidates(params, 200, 10**6) == RERANK_MAX_CANDIDATES
    assert rerank_candidates(params, 2000, 10**6) == 2000  # never fewer than asked
    assert rerank_candidates(params, 10, 30) == 30  # no more than the index holds
    off = IndexParams("ivfpq", 64, nlist=4, pq_m=8, pq_bits=8)
    assert rerank_candidates(off, 10, 10**6) == 10


def test_stored_vectors_read_rows_across_shards_in_any_order(tmp_path: Path) -> None:
    vectors = _clustered(200, 32)
    stored = _saved(tmp_path, vectors, 120)
    ids = np.array([199, 0, 119, 120, 5, 5, 150])
    expected = faiss_ops.normalised(vectors.astype(np.float16)[ids])
    assert np.array_equal(stored.rows(ids), expected)
    # From an index's uids table: the same shards and first ids.
    shard = np.array([3] * 120 + [7] * 80)
    row = np.r_[np.arange(120), np.arange(80)]
    from_table = StoredVectors.of_uids_table(stored.dataset, "image", shard, row)
    assert np.array_equal(from_table.rows(ids), expected)
    with pytest.raises(ValueError, match="do not follow the score shards"):
        StoredVectors.of_uids_table(stored.dataset, "image", shard, row[::-1])


def test_reranked_ivfpq_finds_the_neighbours_its_codes_lose(tmp_path: Path) -> None:
    vectors = faiss_ops.normalised(_clustered(2000, 32).astype(np.float16))
    stored = _saved(tmp_path, vectors, 1300)
    params = choose_params(len(vectors), 32, "ivfpq", GIB)
    assert params.rerank == RERANK_FACTOR
    sample = vectors[np.random.default_rng(1).permutation(len(vectors))[: params.train_size]]
    index = faiss_ops.empty_index(params, sample)
    index.add(vectors)
    queries = vectors[np.random.default_rng(2).permutation(len(vectors))[:200]]
    exact = faiss_ops.ExactNeighbours.empty(len(queries))
    exact.add(queries, vectors, 0)

    plain = dataclasses.replace(params, rerank=0)
    _, plain_recall, _ = faiss_ops.tune(index, plain, queries, exact, 1.0, None)
    value, recall, tried = faiss_ops.tune(index, params, queries, exact, 0.99, stored)
    assert recall >= 0.99 > plain_recall and tried[-1]["value"] == value

    sims, ids = faiss_ops.search(index, params, queries[:5], 10, stored)
    assert ids.shape == (5, 10) and (ids >= 0).all()
    assert np.allclose(sims, np.einsum("qkd,qd->qk", vectors[ids], queries[:5]), atol=1e-5)
    assert (np.diff(sims, axis=1) <= 0).all()
