"""kNN index: build and search time and recall@10 of flat, HNSW and IVF-PQ at a few corpus sizes.

IVF-PQ is measured three ways on one trained index: its codes' ranking alone (``ivfpq``),
re-ranked by exact cosine with the stored float16 vectors memory-mapped from disk as the job
and the reader do (``ivfpq_rerank``: ``pipeline.index.faiss_ops.search`` over
``pipeline.index.vectors.StoredVectors`` of a ``scores/embeddings/00000_image.npy`` written here),
and faiss's in-memory refinement by 8-bit scalar-quantised copies (``ivfpq_sq8``:
``IndexRefine(IVF-PQ, SQ8)``, the same 10x candidates).

    .venv/bin/python benchmarks/index.py [--sizes 10000,30000,100000] [--dim 512] [--queries 500]

For each size, random but clustered unit vectors (--clusters Gaussian centres, members spread
around them, as image embeddings are): the three kinds of index the index job builds, with the
numbers the job would choose for that size (``pipeline.index.params`` with a generous memory
budget; the kind forced), built with the job's own code (``pipeline.index.faiss_ops``: training,
tuning ``nprobe``/``efSearch`` to recall@10 >= --target-recall against exact search; vectors
and queries rounded to float16 as the score job stores them). Every
measurement runs on one core (pinned, one OpenMP thread). Prints a table and writes
benchmarks/_work/index_results.json. The default run takes a couple of minutes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
from harness.paths import work_dir
from harness.table import markdown_table
from harness.timing import one_core

from pipeline.dataset import Dataset
from pipeline.index import faiss_ops
from pipeline.index.faiss_ops import ExactNeighbours
from pipeline.index.params import RERANK_FACTOR, IndexParams, choose_params
from pipeline.index.vectors import StoredVectors


def clustered(size: int, dim: int, clusters: int, spread: float, seed: int) -> np.ndarray:
    """``size`` unit vectors around ``clusters`` random centres (noise of norm about ``spread``)."""
    rng = np.random.default_rng(seed)
    centres = faiss_ops.normalised(rng.standard_normal((clusters, dim)))
    members = centres[rng.integers(0, clusters, size)]
    noise = rng.standard_normal((size, dim)).astype(np.float32) * (spread / np.sqrt(dim))
    return faiss_ops.normalised(members + noise)


IVFPQ_VARIANTS = ("ivfpq", "ivfpq_rerank", "ivfpq_sq8")
_ALIVE: list[Any] = []


def stored_vectors(vectors: np.ndarray) -> StoredVectors:
    """``vectors`` saved as the score job saves them (float16 ``scores/embeddings/00000_image.npy``
    of a scratch dataset), read back as the reader does (memory-mapped)."""
    root = work_dir("index_dataset")
    embeddings = root / "scores" / "embeddings"
    embeddings.mkdir(parents=True, exist_ok=True)
    np.save(embeddings / "00000_image.npy", vectors.astype(np.float16))
    return StoredVectors(Dataset(str(root)), "image", [0], [0])


def build(params: IndexParams, vectors: np.ndarray) -> Any:
    sample = (
        vectors[np.random.default_rng(1).permutation(len(vectors))[: params.train_size]]
        if params.train_size
        else None
    )
    index = faiss_ops.empty_index(params, sample)
    index.add(vectors)
    return index


def sq8_refined(index: Any, vectors: np.ndarray) -> Any:
    """``IndexRefine`` of the trained IVF-PQ ``index`` by 8-bit scalar-quantised vectors."""
    import faiss

    refine = faiss.IndexScalarQuantizer(
        vectors.shape[1], faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
    )
    refine.train(vectors)
    refine.add(vectors)
    refined = faiss.IndexRefine(index, refine)
    refined.k_factor = RERANK_FACTOR
    _ALIVE.append((index, refine))  # the refine index does not own its parts
    return refined


def measure(
    kind: str,
    params: IndexParams,
    index: Any,
    build_s: float,
    vectors: np.ndarray,
    queries: np.ndarray,
    exact: ExactNeighbours,
    target: float,
    stored: StoredVectors | None,
) -> dict[str, Any]:
    size = len(vectors)
    value, recall, _ = faiss_ops.tune(index, params, queries, exact, target, stored)
    started = time.perf_counter()
    faiss_ops.search(index, params, queries, faiss_ops.K, stored)
    search = time.perf_counter() - started
    started = time.perf_counter()
    for query in queries[:100]:
        faiss_ops.search(index, params, query[None, :], faiss_ops.K, stored)
    single = (time.perf_counter() - started) / min(100, len(queries))
    memory = params.estimated_bytes + (size * vectors.shape[1] if kind == "ivfpq_sq8" else 0)
    return {
        "size": size,
        "kind": kind,
        "factory": params.factory + (",Refine(SQ8)" if kind == "ivfpq_sq8" else ""),
        "search_param": value,
        "recall_at_10": round(recall, 4),
        "build_s": round(build_s, 2),
        "ms_per_query_batch": round(1000 * search / len(queries), 3),
        "ms_per_single_query": round(1000 * single, 3),
        "bytes_per_vector": round(memory / size, 1),
    }


def measure_size(
    vectors: np.ndarray, queries: np.ndarray, kinds: list[str], target: float
) -> Iterator[dict[str, Any]]:
    """One row per kind (the IVF-PQ variants share one trained index)."""
    size, dim = vectors.shape
    exact = faiss_ops.ExactNeighbours.empty(len(queries))
    exact.add(queries, vectors, 0)
    for kind in [k for k in kinds if k not in IVFPQ_VARIANTS]:
        params = choose_params(size, dim, kind, 2**40)
        started = time.perf_counter()
        index = build(params, vectors)
        yield measure(
            kind, params, index, time.perf_counter() - started, vectors, queries, exact, target, None
        )
    variants = [k for k in IVFPQ_VARIANTS if k in kinds]
    if not variants:
        return
    params = choose_params(size, dim, "ivfpq", 2**40, rerank=False)
    started = time.perf_counter()
    index = build(params, vectors)
    build_s = time.perf_counter() - started
    for kind in variants:
        if kind == "ivfpq":
            yield measure(kind, params, index, build_s, vectors, queries, exact, target, None)
        elif kind == "ivfpq_rerank":
            reranked = dataclasses.replace(params, rerank=RERANK_FACTOR)
            stored = stored_vectors(vectors)
            yield measure(kind, reranked, index, build_s, vectors, queries, exact, target, stored)
        else:
            started = time.perf_counter()
            refined = sq8_refined(index, vectors)
            extra = time.perf_counter() - started
            yield measure(kind, params, refined, build_s + extra, vectors, queries, exact, target, None)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,30000,100000", help="corpus sizes, comma separated")
    parser.add_argument("--dim", type=int, default=512, help="vector width (ViT-B-32: 512)")
    parser.add_argument("--clusters", type=int, default=1000, help="cluster centres of the vectors")
    parser.add_argument("--spread", type=float, default=0.8, help="norm of the noise around a centre")
    parser.add_argument("--queries", type=int, default=500, help="stored vectors used as queries")
    parser.add_argument("--target-recall", type=float, default=0.95, help="recall@10 nprobe/efSearch aim for")
    parser.add_argument(
        "--kinds", default=",".join(("flat", "hnsw", *IVFPQ_VARIANTS)), help="index kinds, comma separated"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import faiss

    faiss.omp_set_num_threads(1)
    rows = []
    with one_core():
        for size in (int(s) for s in args.sizes.split(",")):
            stored = clustered(size, args.dim, args.clusters, args.spread, args.seed).astype(np.float16)
            vectors = faiss_ops.normalised(stored)  # what the job adds: float16 as saved, normalised
            queries = vectors[np.random.default_rng(args.seed + 1).permutation(size)[: args.queries]]
            for row in measure_size(vectors, queries, args.kinds.split(","), args.target_recall):
                print(json.dumps(row), flush=True)
                rows.append(row)
    columns = list(rows[0])
    print(markdown_table(columns, [[r[c] for c in columns] for r in rows]))
    out = work_dir() / "index_results.json"
    out.write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
