"""The score stage: CLIP similarity of every stored pair, one Spark task per raw shard."""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

from pipeline.dataset import Dataset
from pipeline.errors import UserInputError
from pipeline.executor import SparkExecutor
from pipeline.probe.shard import load_probes
from pipeline.score.distribution import describe, merge
from pipeline.score.model import check_model, load_model
from pipeline.score.options import ScoreOptions
from pipeline.score.shard_scorer import ScoreShard
from pipeline.stage import Stage

log = logging.getLogger(__name__)
LANGUAGES_SHOWN = 10  # languages the terminal summary names (the JSON summary has all)


class ScoreStage(Stage[ScoreOptions]):
    name = "score"
    options_type = ScoreOptions
    description = "Score every downloaded image-caption pair with a CLIP model."

    def check_inputs(self, options: ScoreOptions) -> None:
        """Fail before Spark starts: no raw shards, unknown model, missing or incompatible weights."""
        dataset = Dataset(options.dataset)
        if not dataset.raw.complete_indices():
            raise UserInputError(
                f"{dataset.raw.display()} has no complete raw shards: run jobs/download.py first"
            )
        check_model(options.model, options.pretrained)
        loaded = load_model(options.model, options.pretrained, "cpu")  # an incompatible checkpoint fails here
        if options.probes:
            load_probes(
                options.probes,
                options.model,
                options.pretrained,
                getattr(loaded.model.visual, "output_dim", None),
            )

    def run(self, executor: SparkExecutor, options: ScoreOptions) -> dict[str, Any]:
        """Score every raw shard not yet scored; return (and write) the summary with the distribution."""
        started = time.time()
        dataset = Dataset(options.dataset)
        folder = dataset.scores
        if options.overwrite and folder.exists():
            log.warning("--overwrite: deleting %s", folder.display())
            folder.remove()
        shards = dataset.raw.complete_indices()
        folder.makedirs()
        folder.remove_temporaries()
        _refuse_other_model(dataset, options)
        if options.probes:
            load_probes(options.probes, options.model, options.pretrained)  # before any task
        stats = executor.map(ScoreShard(options), shards)
        seconds = time.time() - started
        done_now = [s for s in stats if not s.get("resumed")]
        scored_now = sum(s["scored"] for s in done_now)
        summary = {
            "model": options.model,
            "pretrained": options.pretrained,
            "shards": len(stats),
            "shards_resumed": len(stats) - len(done_now),
            "scored": sum(s["scored"] for s in stats),
            "scored_this_run": scored_now,
            "seconds": round(seconds, 2),
            "samples_per_second": round(scored_now / seconds, 2) if seconds > 0 else None,
            # Older markers (before issue 18) have no languages: those shards are rescored anyway.
            "languages": _language_counts(stats),
            "captions_repaired": sum(s.get("repaired", 0) for s in stats),
            "distribution": describe(
                merge([s["histogram"] for s in stats]), options.thresholds, options.top_fractions
            ),
        }
        if options.probes:
            summary["probes"] = probe_summary(stats, summary["scored"])
        folder.write_summary(summary)
        return summary

    def format_summary(self, summary: dict[str, Any]) -> str:
        return format_summary(summary)


def _language_counts(stats: list[dict[str, Any]]) -> dict[str, int]:
    """Scored samples per caption language over all shards, most frequent first."""
    total: Counter[str] = Counter()
    for shard in stats:
        total.update(shard.get("languages", {}))
    return dict(total.most_common())


def _refuse_other_model(dataset: Dataset, options: ScoreOptions) -> None:
    """scores/ never mixes two models: rescoring with another one needs --overwrite."""
    for shard in dataset.scores.complete_indices():
        recorded = dataset.scores.shard(shard).stats()
        if (recorded["model"], recorded["pretrained"]) != (options.model, options.pretrained):
            raise UserInputError(
                f"{dataset.scores.display()} holds scores of {recorded['model']} ({recorded['pretrained']}); "
                "pass --overwrite to rescore with another model"
            )


def probe_summary(stats: list[dict[str, Any]], scored: int) -> dict[str, dict[str, Any]]:
    """Per probe: mean score and share of samples at or above its suggested threshold."""
    out: dict[str, dict[str, Any]] = {}
    for name in stats[0].get("probes", {}) if stats else {}:
        total = sum(s["probes"][name]["sum"] for s in stats)
        above = [s["probes"][name]["above_suggested_threshold"] for s in stats]
        out[name] = {
            "mean": round(total / scored, 6) if scored else None,
            "above_suggested_threshold": None if None in above else sum(above),
        }
    return out


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
    languages = summary.get("languages", {})
    if languages:
        scored = max(1, summary["scored"])
        shown = list(languages.items())[:LANGUAGES_SHOWN]
        rest = sum(languages.values()) - sum(count for _, count in shown)
        lines.append(
            "  languages           "
            + "  ".join(f"{language}: {count} ({100 * count / scored:.1f}%)" for language, count in shown)
            + (f"  others: {rest}" if rest else "")
        )
    if "captions_repaired" in summary:
        lines.append(f"  captions repaired   {summary['captions_repaired']:>10}  (ftfy, before scoring)")
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
    for name, probe in summary.get("probes", {}).items():
        above = probe["above_suggested_threshold"]
        lines.append(
            f"  probe {name:<13} mean {probe['mean'] if probe['mean'] is not None else 0:.3f}"
            + (f", {above} samples at or above its suggested threshold" if above is not None else "")
        )
    return "\n".join(lines)
