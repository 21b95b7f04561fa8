"""The index job: a faiss kNN index over the score job's saved embeddings (docs/explore.md)."""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

from pipeline.dataset import Dataset
from pipeline.executor import SparkExecutor
from pipeline.index.build import AddShard, PartTask, index_inputs, merge_parts, train
from pipeline.index.inputs import ScoredShards, scored_shards
from pipeline.index.options import IndexOptions
from pipeline.index.params import IndexParams, choose_params
from pipeline.runner import completed
from pipeline.stage import Stage

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class IndexPlan:
    """What the driver decided before the Spark tasks: inputs, parameters, trained indexes."""

    scored: ScoredShards
    params: dict[str, IndexParams]
    trained: dict[str, str]  # token of each kind's trained index, for the kinds still to build
    finished: dict[str, dict[str, Any]]  # marker of each kind's index already complete

    def step(self, dataset: Dataset) -> AddShard:
        return AddShard(dataset, self.params, self.trained)

    def tasks(self) -> list[PartTask]:
        return [
            PartTask(kind, shard, token)
            for kind in self.trained
            for shard, token in zip(self.scored.shards, self.scored.tokens, strict=True)
        ]


class IndexStage(Stage[IndexOptions]):
    name = "index"
    options_type = IndexOptions
    description = "Build a kNN index (faiss) over the image (and text) embeddings saved by the score job."

    def check_inputs(self, options: IndexOptions) -> None:
        """Fail before Spark starts: no scores, no embeddings, incomplete shards, mixed models or
        row counts, an index that cannot fit the memory budget."""
        scored = scored_shards(Dataset(options.dataset), options.kinds)
        choose_params(scored.vectors, scored.dim, options.index_type, options.memory_bytes, options.rerank)

    def plan(self, options: IndexOptions) -> IndexPlan:
        """Check the inputs, choose the parameters and commit each kind's trained index (driver)."""
        dataset = Dataset(options.dataset)
        folder = dataset.index
        if options.overwrite and folder.exists():
            log.warning("--overwrite: deleting %s", folder.display())
            folder.remove()
        scored = scored_shards(dataset, options.kinds)
        params = {
            kind: choose_params(
                scored.vectors, scored.dim, options.index_type, options.memory_bytes, options.rerank
            )
            for kind in options.kinds
        }
        folder.makedirs()
        folder.remove_temporaries()
        dataset.storage.write_json(dataclasses.asdict(options), *folder.options_file)
        finished, trained = {}, {}
        for kind in options.kinds:
            inputs = index_inputs(
                kind, params[kind], scored, options.recall_queries, options.target_recall, options.seed
            )
            done = completed(dataset.storage, folder.output(kind), inputs)
            if done is not None:
                log.info("%s index: complete for these inputs, nothing to build", kind)
                finished[kind] = {**done, "resumed": True}
            else:
                trained[kind] = train(dataset, kind, params[kind], scored, options.seed)
        return IndexPlan(scored, params, trained, finished)

    def run(self, executor: SparkExecutor, options: IndexOptions) -> dict[str, Any]:
        """Build every kind's index (resuming committed parts); return and write the summary."""
        started = time.time()
        dataset = Dataset(options.dataset)
        plan = self.plan(options)
        tasks = plan.tasks()
        results = executor.map(plan.step(dataset), tasks)
        indexes = {}
        for kind, params in plan.params.items():
            mine = [r for t, r in zip(tasks, results, strict=True) if t.kind == kind]
            marker = plan.finished.get(kind) or merge_parts(
                dataset,
                kind,
                params,
                plan.scored,
                options.recall_queries,
                options.target_recall,
                options.seed,
            )
            # A complete index: its parts were merged (and removed) by an earlier run.
            resumed_parts = len(plan.scored.shards) if kind in plan.finished else 0
            indexes[kind] = {
                **{k: v for k, v in marker.items() if k not in ("fingerprint", "resumed")},
                "resumed": bool(marker["resumed"]),
                "parts": len(mine) + resumed_parts,
                "parts_resumed": sum(1 for r in mine if r.get("resumed")) + resumed_parts,
                "file": dataset.index.display(dataset.index.index_file(kind)[1]),
            }
        summary = {
            "model": plan.scored.model,
            "pretrained": plan.scored.pretrained,
            "dim": plan.scored.dim,
            "shards": len(plan.scored.shards),
            "vectors": plan.scored.vectors,
            "indexes": indexes,
            "build_seconds": round(time.time() - started, 2),
        }
        dataset.index.write_summary(summary)
        return summary

    def format_summary(self, summary: dict[str, Any]) -> str:
        return format_summary(summary)


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as the terminal shows it: per index its kind, size, search setting and recall."""
    lines = [
        "index summary",
        f"  model               {summary['model']} ({summary['pretrained']})",
        f"  vectors             {summary['vectors']:>10}  "
        f"({summary['shards']} score shards, width {summary['dim']})",
    ]
    for kind, index in summary["indexes"].items():
        setting = f", {index['search_param']}={index['search_value']}" if index["search_param"] else ""
        if index.get("rerank"):
            setting += f", re-ranked ({index['rerank']}x candidates, exact from the stored vectors)"
        lines.append(
            f"  {kind:<8}            {index['params']['factory']}{setting}: {index['ntotal']} vectors, "
            f"recall@10 {index['recall_at_10']:.3f} against exact search "
            f"({index['recall_queries']} queries); "
            f"{index['parts']} parts, {index['parts_resumed']} already done; {index['file']}"
        )
    lines.append(f"  build time          {summary['build_seconds']:>10.1f} s")
    return "\n".join(lines)
