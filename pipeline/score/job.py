"""``run(spark, options)``: the score job, one Spark task per raw shard."""

from __future__ import annotations

import logging
import time
from typing import Any

from pipeline.dataset import Dataset
from pipeline.errors import UserInputError
from pipeline.score.distribution import describe, merge
from pipeline.score.model import check_model, load_model
from pipeline.score.options import ScoreOptions
from pipeline.score.shard_scorer import SCORES_DIR, score_shard, scored_stats, scores_stats_name
from pipeline.shards.raw_writer import RAW_DIR
from pipeline.shards.raw_writer import complete_shards as raw_shards
from pipeline.spark_progress import run_with_progress

log = logging.getLogger(__name__)


def check_inputs(options: ScoreOptions) -> None:
    """Fail before Spark starts: no raw shards, unknown model, missing or incompatible weights."""
    dataset = Dataset(options.dataset)
    if not raw_shards(dataset):
        raise UserInputError(
            f"{dataset.path(RAW_DIR)} has no complete raw shards: run jobs/download.py first"
        )
    check_model(options.model, options.pretrained)
    load_model(options.model, options.pretrained, "cpu")  # an incompatible checkpoint fails here


def run(spark: Any, options: ScoreOptions) -> dict[str, Any]:
    """Score every raw shard not yet scored; return (and write) the summary with the distribution."""
    started = time.time()
    dataset = Dataset(options.dataset)
    if options.overwrite and dataset.exists(SCORES_DIR):
        log.warning("--overwrite: deleting %s", dataset.path(SCORES_DIR))
        dataset.fs.rm(dataset.path(SCORES_DIR), recursive=True)
    shards = raw_shards(dataset)
    dataset.makedirs(SCORES_DIR)
    dataset.remove_temporaries(SCORES_DIR)
    for shard in shards:
        if not dataset.exists(SCORES_DIR, scores_stats_name(dataset, shard)):
            continue
        recorded = dataset.read_json(SCORES_DIR, scores_stats_name(dataset, shard))
        if (recorded["model"], recorded["pretrained"]) != (options.model, options.pretrained):
            raise UserInputError(
                f"{dataset.path(SCORES_DIR)} holds scores of {recorded['model']} ({recorded['pretrained']}); "
                "pass --overwrite to rescore with another model"
            )
    # A raw shard redone since it was scored (download --overwrite, a lost shard) is scored again.
    done = [s for s in shards if scored_stats(dataset, s) is not None]
    todo = sorted(set(shards) - set(done))
    log.info("%d raw shards, %d to score with %s", len(shards), len(todo), options.model)
    stats = [score_shard(s, options) for s in done]

    def task(shard: int) -> dict[str, Any]:
        return score_shard(shard, options, device=_task_device(options.device))

    stats += run_with_progress(spark, todo, task, "corpusforge-score", "scoring shards")
    seconds = time.time() - started
    scored_now = sum(s["scored"] for s in stats if not s.get("resumed"))
    summary = {
        "model": options.model,
        "pretrained": options.pretrained,
        "shards": len(stats),
        "shards_resumed": len(done),
        "scored": sum(s["scored"] for s in stats),
        "scored_this_run": scored_now,
        "seconds": round(seconds, 2),
        "samples_per_second": round(scored_now / seconds, 2) if seconds > 0 else None,
        "distribution": describe(
            merge([s["histogram"] for s in stats]), options.thresholds, options.top_fractions
        ),
    }
    dataset.write_json_atomic(summary, SCORES_DIR, "_summary.json")
    return summary


def _task_device(device: str) -> str:
    """With Spark GPU scheduling, use the GPU the task was given; otherwise ``device`` as asked."""
    if device != "auto":
        return device
    try:
        from pyspark import TaskContext

        context = TaskContext.get()
        gpus = context.resources().get("gpu") if context is not None else None
        if gpus is not None and gpus.addresses:
            return f"cuda:{gpus.addresses[0]}"
    except ImportError:
        pass
    return device


def format_summary(summary: dict[str, Any]) -> str:
    """A human-readable report: counts, throughput, quantiles and threshold choices."""
    dist = summary["distribution"]
    lines = [
        "score summary",
        f"  model               {summary['model']} ({summary['pretrained']})",
        f"  samples scored      {summary['scored']:>10}  "
        f"({summary['shards']} shards, {summary['shards_resumed']} already done)",
        f"  throughput          {summary['samples_per_second'] or 0:>10.1f} samples/s this run",
    ]
    if dist.get("count"):
        lines.append(
            "  quantiles           "
            + "  ".join(f"p{float(q) * 100:g}={v:.3f}" for q, v in dist["quantiles"].items())
        )
        lines.append(
            "  kept at threshold   "
            + "  ".join(f">={t}: {100 * f:.1f}%" for t, f in dist["kept_at_threshold"].items())
        )
        lines.append(
            "  threshold for top   "
            + "  ".join(
                f"{100 * float(f):g}%: {t:.3f}" for f, t in dist["threshold_for_top_fraction"].items()
            )
        )
    return "\n".join(lines)
