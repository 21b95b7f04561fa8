"""Building one index: train on the driver, add each score shard's vectors in a Spark task, merge.

1. :func:`train` (driver): the empty index of the chosen parameters; for IVF-PQ trained on a
   stable sample of the stored vectors (seeded: a rerun draws the same rows), committed as
   ``index/parts/KIND/_trained.faiss`` so a resumed job adds to the same quantizer;
2. :class:`AddShard` (one Spark task per score shard): the shard's vectors, L2-normalised,
   added to a copy of the trained index (a flat index for HNSW), committed as
   ``index/parts/KIND/NNNNN.faiss`` through :mod:`pipeline.runner`, so a killed job resumes;
3. :func:`merge_parts` (driver): the parts merged in shard order (HNSW: its graph built over
   every vector here), recall@10 measured against exact search on a sample of stored embeddings
   through the reader's search (IVF-PQ re-ranked from the stored vectors unless ``--no-rerank``),
   ``nprobe``/``efSearch`` tuned to ``--target-recall``, written with the uids table; the parts
   are removed afterwards.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from pipeline.dataset import Dataset
from pipeline.index import faiss_ops
from pipeline.index.inputs import ScoredShards, load_embeddings
from pipeline.index.params import IndexParams
from pipeline.index.vectors import StoredVectors
from pipeline.runner import ShardCommit, completed, fingerprint, marker_token, run_shard
from pipeline.stage import ShardStep
from schemas.index import INDEX_UIDS_SCHEMA, INDEX_UIDS_VERSION

log = logging.getLogger(__name__)

# Bump when what a part or an index holds changes, so committed ones are not reused.
INDEX_VERSION = 1


def trained_inputs(kind: str, params: IndexParams, scored: ScoredShards, seed: int) -> str:
    """The fingerprint of what a trained empty index is made from (seeded: the same sample)."""
    return fingerprint(
        version=INDEX_VERSION, kind=kind, params=params.to_json(), scores=scored.tokens, seed=seed
    )


def index_inputs(
    kind: str, params: IndexParams, scored: ScoredShards, recall_queries: int, target_recall: float, seed: int
) -> str:
    """The fingerprint of a merged index (``index/KIND.faiss``).

    It names the trained index by its inputs, not by its marker: the parts and the trained index
    are removed after the merge, so a rerun of a complete build can recognise it without
    training again (:meth:`pipeline.index.job.IndexStage.plan`).
    """
    return fingerprint(
        version=INDEX_VERSION,
        uids=INDEX_UIDS_VERSION,
        kind=kind,
        params=params.to_json(),
        trained=trained_inputs(kind, params, scored, seed),
        scores=scored.tokens,
        recall_queries=recall_queries,
        target_recall=target_recall,
        seed=seed,
    )


def train(dataset: Dataset, kind: str, params: IndexParams, scored: ScoredShards, seed: int) -> str:
    """Commit the trained empty index of ``kind`` (reused when committed from the same inputs);
    returns its token (its marker's digest), which every part's fingerprint includes, so a part
    is never merged with a quantizer it was not added to."""
    output = dataset.index.trained_output(kind)
    inputs = trained_inputs(kind, params, scored, seed)

    def work(commit: ShardCommit) -> dict[str, Any]:
        sample = (
            training_sample(dataset, kind, scored, params.train_size, seed) if params.train_size else None
        )
        commit.write_bytes(faiss_ops.to_bytes(faiss_ops.empty_index(params, sample, seed)), *output.files[0])
        return {"kind": kind, "params": params.to_json(), "trained_on": 0 if sample is None else len(sample)}

    marker = run_shard(dataset.storage, output, inputs, work)
    if marker["resumed"]:
        log.info("%s index: reusing the trained %s", kind, params.factory)
    return marker_token(dataset.storage, output.marker)


def training_sample(dataset: Dataset, kind: str, scored: ScoredShards, size: int, seed: int) -> np.ndarray:
    """``size`` stored vectors drawn without replacement (seeded), normalised, in id order."""
    chosen = _sample_ids(scored.vectors, size, seed)
    return faiss_ops.normalised(np.concatenate(list(_rows_of(dataset, kind, scored, chosen))))


def _sample_ids(total: int, size: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).permutation(total)[: min(size, total)])


def _rows_of(dataset: Dataset, kind: str, scored: ScoredShards, ids: np.ndarray) -> Any:
    """The stored vectors of the (sorted) index ids ``ids``, one block per shard."""
    for shard, start, rows in zip(scored.shards, scored.first_ids(), scored.rows, strict=True):
        mine = ids[(ids >= start) & (ids < start + rows)] - start
        if len(mine):
            yield load_embeddings(dataset, shard, kind)[mine]


@dataclass(frozen=True)
class PartTask:
    kind: str
    shard: int
    scores_token: str


@dataclass(frozen=True)
class AddShard(ShardStep[PartTask, None]):
    """Add one score shard's vectors to a copy of the trained index of their kind."""

    dataset: Dataset
    params: dict[str, IndexParams]  # by kind
    trained: dict[str, str]  # token of each kind's trained index

    name = "corpusforge-index"
    description = "adding shards to the index"
    counters = ("vectors",)

    def _inputs(self, task: PartTask) -> str:
        return fingerprint(
            version=INDEX_VERSION,
            scores=task.scores_token,
            trained=self.trained[task.kind],
            params=self.params[task.kind].to_json(),
        )

    def completed(self, task: PartTask) -> dict[str, Any] | None:
        part = self.dataset.index.part(task.kind, task.shard)
        return completed(self.dataset.storage, part.output, self._inputs(task))

    def process(self, task: PartTask, state: None) -> dict[str, Any]:
        dataset = self.dataset
        part = dataset.index.part(task.kind, task.shard)
        params = self.params[task.kind]

        def work(commit: ShardCommit) -> dict[str, Any]:
            trained_file = dataset.index.trained_output(task.kind).files[0]
            index = faiss_ops.part_index(
                params, faiss_ops.from_bytes(dataset.storage.read_bytes(*trained_file))
            )
            vectors = faiss_ops.normalised(load_embeddings(dataset, task.shard, task.kind))
            if len(vectors):
                index.add(vectors)
            commit.write_bytes(faiss_ops.to_bytes(index), *part.output.files[0])
            return {"kind": task.kind, "shard": task.shard, "vectors": int(index.ntotal)}

        return run_shard(dataset.storage, part.output, self._inputs(task), work)


def merge_parts(
    dataset: Dataset,
    kind: str,
    params: IndexParams,
    scored: ScoredShards,
    recall_queries: int,
    target_recall: float,
    seed: int,
) -> dict[str, Any]:
    """Merge the committed parts of ``kind`` into ``index/KIND.faiss`` and its uids, measure and
    tune recall@10; returns the index's marker (reused when committed from the same inputs)."""
    folder = dataset.index
    inputs = index_inputs(kind, params, scored, recall_queries, target_recall, seed)

    def work(commit: ShardCommit) -> dict[str, Any]:
        started = time.time()
        trained = faiss_ops.from_bytes(dataset.storage.read_bytes(*folder.trained_output(kind).files[0]))
        parts = (
            faiss_ops.from_bytes(dataset.storage.read_bytes(*folder.part(kind, s).output.files[0]))
            for s in scored.shards
        )
        index = faiss_ops.merge(params, trained, parts)
        if index.ntotal != scored.vectors:
            raise RuntimeError(
                f"{kind} index holds {index.ntotal} vectors, the score shards {scored.vectors}"
            )
        merged = time.time() - started
        query_ids = _sample_ids(scored.vectors, recall_queries, seed + 1)
        queries = faiss_ops.normalised(np.concatenate(list(_rows_of(dataset, kind, scored, query_ids))))
        exact = faiss_ops.ExactNeighbours.empty(len(queries))
        for shard, start in zip(scored.shards, scored.first_ids(), strict=True):
            exact.add(queries, faiss_ops.normalised(load_embeddings(dataset, shard, kind)), start)
        # Recall through the reader's search: IVF-PQ re-ranked from the stored vectors.
        vectors = StoredVectors(dataset, kind, scored.shards, scored.first_ids()) if params.rerank else None
        value, recall, tried = faiss_ops.tune(index, params, queries, exact, target_recall, vectors)
        commit.write_bytes(faiss_ops.to_bytes(index), *folder.index_file(kind))
        commit.write_parquet(_uids_table(dataset, scored), *folder.uids(kind).parts)
        stats = {
            "kind": kind,
            "model": scored.model,
            "pretrained": scored.pretrained,
            "dim": params.dim,
            "ntotal": int(index.ntotal),
            "params": params.to_json(),
            "search_param": _search_param_name(params),
            "search_value": value,
            "rerank": params.rerank,
            "recall_at_10": round(recall, 4),
            "recall_queries": len(queries),
            "recall_tried": tried,
            "merge_seconds": round(merged, 3),
        }
        log.info("%s index %s: %d vectors, recall@10 %.3f", kind, params.factory, index.ntotal, recall)
        return stats

    marker = run_shard(dataset.storage, folder.output(kind), inputs, work)
    folder.remove_parts(kind)
    return marker


def _search_param_name(params: IndexParams) -> str | None:
    return {"ivfpq": "nprobe", "hnsw": "efSearch"}.get(params.kind)


def _uids_table(dataset: Dataset, scored: ScoredShards) -> pa.Table:
    uids: list[str] = []
    shards: list[int] = []
    rows: list[int] = []
    for shard, count in zip(scored.shards, scored.rows, strict=True):
        found = dataset.scores.shard(shard).table(["uid"]).column("uid").to_pylist()
        if len(found) != count:
            raise RuntimeError(f"score shard {shard:05d} changed while indexing")
        uids.extend(found)
        shards.extend([shard] * count)
        rows.extend(range(count))
    return pa.table({"uid": uids, "shard": shards, "row": rows}, schema=INDEX_UIDS_SCHEMA)
