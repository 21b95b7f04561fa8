"""kNN index: build and search time and recall@10 of flat, HNSW and IVF-PQ at a few corpus sizes.

    .venv/bin/python benchmarks/index.py [--sizes 10000,30000,100000] [--dim 512] [--queries 500]

For each size, random but clustered unit vectors (--clusters Gaussian centres, members spread
around them, as image embeddings are): the three kinds of index the index job builds, with the
numbers the job would choose for that size (``pipeline.index.params`` with a generous memory
budget; the kind forced), built with the job's own code (``pipeline.index.faiss_ops``: training,
tuning ``nprobe``/``efSearch`` to recall@10 >= --target-recall against exact search). Every
measurement runs on one core (pinned, one OpenMP thread). Prints a table and writes
benchmarks/_work/index_results.json. The default run takes a couple of minutes.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
from harness.paths import work_dir
from harness.table import markdown_table
from harness.timing import one_core

from pipeline.index import faiss_ops
from pipeline.index.params import choose_params


def clustered(size: int, dim: int, clusters: int, spread: float, seed: int) -> np.ndarray:
    """``size`` unit vectors around ``clusters`` random centres (noise of norm about ``spread``)."""
    rng = np.random.default_rng(seed)
    centres = faiss_ops.normalised(rng.standard_normal((clusters, dim)))
    members = centres[rng.integers(0, clusters, size)]
    noise = rng.standard_normal((size, dim)).astype(np.float32) * (spread / np.sqrt(dim))
    return faiss_ops.normalised(members + noise)


def measure(kind: str, vectors: np.ndarray, queries: np.ndarray, target: float) -> dict[str, Any]:
    size, dim = vectors.shape
    params = choose_params(size, dim, kind, 2**40)
    started = time.perf_counter()
    exact = faiss_ops.ExactNeighbours.empty(len(queries))
    exact.add(queries, vectors, 0)
    exact_seconds = time.perf_counter() - started
    started = time.perf_counter()
    sample = (
        vectors[np.random.default_rng(1).permutation(size)[: params.train_size]]
        if params.train_size
        else None
    )
    index = faiss_ops.empty_index(params, sample)
    index.add(vectors)
    build = time.perf_counter() - started
    value, recall, _ = faiss_ops.tune(index, params, queries, exact, target)
    started = time.perf_counter()
    index.search(queries, faiss_ops.K)
    search = time.perf_counter() - started
    started = time.perf_counter()
    for query in queries[:100]:
        index.search(query[None, :], faiss_ops.K)
    single = (time.perf_counter() - started) / min(100, len(queries))
    return {
        "size": size,
        "kind": kind,
        "factory": params.factory,
        "search_param": value,
        "recall_at_10": round(recall, 4),
        "build_s": round(build, 2),
        "ms_per_query_batch": round(1000 * search / len(queries), 3),
        "ms_per_single_query": round(1000 * single, 3),
        "bytes_per_vector": round(params.estimated_bytes / size, 1),
        "numpy_exact_s": round(exact_seconds, 2),
    }


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
    parser.add_argument("--kinds", default="flat,hnsw,ivfpq", help="index kinds, comma separated")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import faiss

    faiss.omp_set_num_threads(1)
    rows = []
    with one_core():
        for size in (int(s) for s in args.sizes.split(",")):
            vectors = clustered(size, args.dim, args.clusters, args.spread, args.seed)
            queries = vectors[np.random.default_rng(args.seed + 1).permutation(size)[: args.queries]]
            for kind in args.kinds.split(","):
                row = measure(kind, vectors, queries, args.target_recall)
                print(json.dumps(row), flush=True)
                rows.append(row)
    columns = list(rows[0])
    print(markdown_table(columns, [[r[c] for c in columns] for r in rows]))
    out = work_dir() / "index_results.json"
    out.write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
