"""The build_shards stage: select samples and write globally shuffled final shards.

Stages (see docs/build_shards.md):
1. candidates: one Spark task per raw shard reads its parquet, scores and tar member offsets;
2. selection: drop reasons as DataFrame columns (dedup matches joined on uid);
3. plan: kept samples sorted by their seeded shuffle key, cut into shards of --samples-per-shard;
4. records: final/_selection/NNNNN.parquet, one per raw shard, every sample with its fate;
5. shards: one Spark task per final shard reads its samples from the raw tars with ranged reads.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from pipeline import __version__
from pipeline.build.inputs import BuildInputs, discover_inputs, upstream_versions
from pipeline.build.manifest import write_manifest
from pipeline.build.options import BuildOptions
from pipeline.build.records import write_selection_part
from pipeline.build.selection import (
    candidates_frame,
    language_counts,
    matches_frame,
    partitions_for,
    positioned,
    probe_drop_counts,
    reason_counts,
    top_fraction_boundary,
    uid_frame,
    unknown_uids,
    with_probes,
    with_reasons,
    with_subset,
)
from pipeline.build.shard_plan import shard_count
from pipeline.build.uid_lists import read_uid_array
from pipeline.build.writer import PlannedSample, write_final_shard
from pipeline.dataset import Dataset
from pipeline.errors import UserInputError
from pipeline.executor import SparkExecutor
from pipeline.stage import Stage
from schemas.selection import DROP_REASONS

log = logging.getLogger(__name__)
LANGUAGES_SHOWN = 10  # languages the terminal summary names (the JSON summary has all)


class BuildStage(Stage[BuildOptions]):
    name = "build_shards"
    options_type = BuildOptions
    description = (
        "Select samples (CLIP score, dedup, caption and image rules) and write globally shuffled "
        "WebDataset shards of a uniform size to DIR/final/, ready for open_clip_train."
    )

    def check_inputs(self, options: BuildOptions) -> None:
        """Fail before Spark starts: missing or partial inputs, or a resume with other options/inputs."""
        inputs = discover_inputs(options)
        _check_resume(Dataset(options.dataset), options, inputs)

    def run(self, executor: SparkExecutor, options: BuildOptions) -> dict[str, Any]:
        return run(executor, options)

    def format_summary(self, summary: dict[str, Any]) -> str:
        return format_summary(summary)


def run(executor: SparkExecutor, options: BuildOptions) -> dict[str, Any]:
    """Build (or finish building) ``final/``; return (and write) the summary."""
    started = time.time()
    dataset = Dataset(options.dataset)
    final = dataset.final
    inputs = discover_inputs(options)
    if options.overwrite and final.exists():
        log.warning("--overwrite: deleting %s", final.display())
        final.remove()
    _check_resume(dataset, options, inputs)
    final.makedirs()
    if not dataset.storage.exists(*final.options_file):
        dataset.storage.write_json(_recorded_options(options, inputs), *final.options_file)
    # No task runs yet, so every temporary file left in final/ belongs to a dead writer.
    removed = final.remove_temporaries() + dataset.storage.remove_temporaries(final.selection_folder)
    if removed:
        log.info("removed %d partial files of an interrupted run", removed)
    finished = _finished_build(dataset, started)
    if finished is not None:
        log.info("%s is complete (same options and inputs): nothing to do", final.display())
        return finished

    lists = _read_uid_lists(options)
    frames = {name: uid_frame(executor, uids) for name, uids in lists.items()}
    candidates = with_subset(
        candidates_frame(executor, options, inputs), frames.get("include_uids"), frames.get("exclude_uids")
    )
    if options.probe_names:  # issue 18, part C
        candidates = with_probes(executor, candidates, dataset, inputs, options.probe_names)
    candidates = candidates.cache()
    parts = partitions_for(candidates.count())
    boundary = (
        top_fraction_boundary(candidates, options.top_fraction, parts) if options.top_fraction else None
    )
    matches = matches_frame(executor, dataset, inputs)
    reasoned = with_reasons(candidates, matches, options, boundary).coalesce(parts).cache()
    counts = reason_counts(reasoned)
    probe_drops = probe_drop_counts(reasoned) if options.probe_names else {}
    languages = language_counts(reasoned) if inputs.scored_shards else {}
    kept = counts.get(None, 0)
    total = sum(counts.values())
    dropped = {reason: counts.get(reason, 0) for reason in DROP_REASONS if counts.get(reason, 0)}
    log.info("%d samples, %d kept, dropped: %s", total, kept, dropped or "none")
    if kept == 0:
        raise UserInputError(
            f"no sample of {dataset.url} passes the selection ({total} samples; dropped: {dropped}): "
            "relax the rules"
        )
    shards = shard_count(kept, options.samples_per_shard)
    plan = positioned(reasoned, options.samples_per_shard, parts).persist()
    unmatched = _unmatched_matches(executor, dataset, inputs, candidates)
    subset = _subset_counts(options, inputs, lists, frames, candidates)

    records = _write_records(executor, dataset, inputs, reasoned, plan)
    if records != total:
        raise RuntimeError(f"selection records cover {records} samples, expected {total}")
    stats = _write_shards(executor, dataset, plan, shards)
    plan.unpersist()
    reasoned.unpersist()
    candidates.unpersist()

    warnings = []
    if not inputs.has_matches:
        warnings.append("dedup/matches.parquet missing: built without dedup (benchmark duplicates kept)")
    if unmatched:
        warnings.append(f"{unmatched} uids of dedup/matches.parquet are not downloaded samples of raw/")
    if shards < options.min_shards:
        warnings.append(
            f"only {shards} shards (< --min-shards {options.min_shards}): open_clip_train needs at least "
            "workers x GPUs shards; lower --samples-per-shard"
        )
    for name, counts in subset.items():
        if counts["unknown"]:
            flag = "--" + name.replace("_", "-")
            warnings.append(
                f"{counts['unknown']} of {counts['listed']} uids of {flag} {counts['file']} are not "
                f"downloaded samples of {dataset.url} (e.g. {', '.join(counts['unknown_examples'])})"
            )
    for warning in warnings:
        log.warning("%s", warning)
    selection = {
        **options.output_options(),
        **{
            name: {k: v for k, v in subset.get(name, {}).items() if k != "unknown_examples"} or None
            for name in ("include_uids", "exclude_uids")
        },
        "top_fraction_boundary": None
        if boundary is None
        else {"clip_score": boundary.clip_score, "uid": boundary.uid, "keep": boundary.keep},
    }
    manifest = write_manifest(
        dataset,
        stats,
        selection=selection,
        counts={"samples": total, "kept": kept, "dropped": dropped},
        upstream=upstream_versions(dataset, inputs),
        version=__version__,
    )
    seconds = time.time() - started
    written = [s for s in stats if not s["resumed"]]
    summary = {
        "samples": total,
        "kept": kept,
        "dropped": dropped,
        # Samples and kept samples per caption language (from scores/; issue 18).
        "languages": languages,
        "shards": shards,
        "shards_resumed": len(stats) - len(written),
        "samples_per_shard": options.samples_per_shard,
        "total_bytes": manifest["total_bytes"],
        "top_fraction_boundary": selection["top_fraction_boundary"],
        "subset": subset,
        **({"probe_drops": probe_drops} if options.probe_names else {}),
        "dedup": inputs.has_matches,
        "score_model": inputs.score_model,
        "warnings": warnings,
        "seconds": round(seconds, 2),
        "samples_written_per_second": round(sum(s["count"] for s in written) / seconds, 2)
        if seconds
        else None,
        "shard_pattern": final.pattern(shards),
    }
    final.write_summary(summary)
    return summary


def _finished_build(dataset: Dataset, started: float) -> dict[str, Any] | None:
    """The summary of a complete build of the same options and inputs, or None if anything is missing.

    Complete: manifest.json, sizes.json and the summary exist (written last), and every shard the
    manifest lists is in place with its marker's hash and size. Callers checked options and inputs.
    """
    final, storage = dataset.final, dataset.storage
    if not all(storage.exists(*f) for f in (final.manifest_file, final.sizes_file, final.summary_file)):
        return None
    for index, shard in enumerate(final.manifest()["shards"]):
        unit = final.shard(index)
        if unit.tar_name != shard["name"] or not unit.is_complete() or not unit.tar.exists():
            return None
        recorded = unit.stats()
        size = storage.size(*unit.tar.parts)
        if (recorded["sha256"], recorded["bytes"], size) != (shard["sha256"], shard["bytes"], shard["bytes"]):
            return None
    summary = final.summary()
    seconds = time.time() - started
    return {
        **summary,
        "shards_resumed": summary["shards"],
        "seconds": round(seconds, 2),
        "samples_written_per_second": 0.0,
    }


def _recorded_options(options: BuildOptions, inputs: BuildInputs) -> dict[str, Any]:
    # The uid lists by the digest of their file, and only when given, so builds recorded before
    # the lists existed still resume. A JSON round trip so the record compares equal to what is
    # read back later.
    recorded = {**options.output_options(), **inputs.uid_lists}
    return json.loads(json.dumps({"options": recorded, "inputs": inputs.fingerprint}))


def _read_uid_lists(options: BuildOptions) -> dict[str, Any]:
    """The --include-uids / --exclude-uids lists (sorted S32 arrays), each file read once."""
    lists = {}
    for name, path in options.uid_lists.items():
        flag = "--" + name.replace("_", "-")
        lists[name] = read_uid_array(path, flag)
        log.info("%s %s: %d uids", flag, path, len(lists[name]))
    if "include_uids" in lists and len(lists["include_uids"]) == 0:
        raise UserInputError(
            f"--include-uids {options.include_uids} lists no uid: it would drop every sample "
            "(leave the option out to keep all)"
        )
    return lists


def _subset_counts(
    options: BuildOptions,
    inputs: BuildInputs,
    lists: dict[str, Any],
    frames: dict[str, Any],
    candidates: Any,
) -> dict[str, dict[str, Any]]:
    """Per uid list given: its file and digest, uids listed, matched (downloaded samples) and unknown."""
    out = {}
    for name, uids in lists.items():
        unknown, examples = unknown_uids(frames[name], candidates)
        out[name] = {
            "file": options.uid_lists[name],
            "sha256": inputs.uid_lists[name]["sha256"],
            "listed": len(uids),
            "matched": len(uids) - unknown,
            "unknown": unknown,
            "unknown_examples": examples,
        }
    return out


def _check_resume(dataset: Dataset, options: BuildOptions, inputs: BuildInputs) -> None:
    """Refuse to continue a build made with other options or from other inputs (unless --overwrite)."""
    if options.overwrite or not dataset.storage.exists(*dataset.final.options_file):
        return
    recorded = dataset.storage.read_json(*dataset.final.options_file)
    wanted = _recorded_options(options, inputs)
    if recorded.get("options") != wanted["options"]:
        before = recorded.get("options", {})
        changed = sorted(
            k for k in {*before, *wanted["options"]} if before.get(k) != wanted["options"].get(k)
        )
        raise UserInputError(
            f"{dataset.final.display()} was built with other options: {', '.join(changed)} (recorded in "
            f"{dataset.display(*dataset.final.options_file)}); pass the same options to resume, or "
            "--overwrite to rebuild"
        )
    if recorded.get("inputs") != wanted["inputs"]:
        changed = sorted(
            k for k in wanted["inputs"] if recorded.get("inputs", {}).get(k) != wanted["inputs"][k]
        )
        raise UserInputError(
            f"{dataset.final.display()} was built from other inputs: {', '.join(changed)} changed since "
            "(raw/, scores/ or dedup/ were redone); pass --overwrite to rebuild"
        )


def _unmatched_matches(
    executor: SparkExecutor, dataset: Dataset, inputs: BuildInputs, candidates: Any
) -> int:
    """Dedup rows naming no downloaded sample (dedup run on another download?)."""
    matches = matches_frame(executor, dataset, inputs)
    if matches is None:
        return 0
    return matches.join(candidates.select("uid"), "uid", "left_anti").count()


def _write_records(
    executor: SparkExecutor, dataset: Dataset, inputs: BuildInputs, reasoned: Any, plan: Any
) -> int:
    """One selection parquet per raw shard; returns the number of samples recorded."""
    order = {shard: i for i, shard in enumerate(inputs.raw_shards)}
    dropped = (
        reasoned.where("reason IS NOT NULL")
        .select("uid", "raw_shard", "reason", "clip_score", "match_id")
        .rdd.map(lambda r: (r[1], (r[0], r[1], r[2], r[3], r[4], None, None)))
    )
    kept = plan.map(lambda p: (p[2][1], (p[2][0], p[2][1], None, p[2][5], None, p[0], p[1])))
    parts = dropped.union(kept).partitionBy(len(order), lambda shard: order[shard])
    shards = list(inputs.raw_shards)

    def write(index: int, rows: Any) -> list[int]:
        return [write_selection_part(dataset, shards[index], [row for _, row in rows])]

    records = parts.mapPartitionsWithIndex(write)
    return sum(executor.collect(records, len(shards), "corpusforge-build", "selection records"))


def _write_shards(executor: SparkExecutor, dataset: Dataset, plan: Any, shards: int) -> list[dict[str, Any]]:
    """One Spark task per final shard; complete shards (marker with the same plan) are skipped."""

    def write(index: int, rows: Any) -> list[dict[str, Any]]:
        samples = [PlannedSample(position, r[0], r[1], r[2], r[3], r[4], r[5]) for shard, position, r in rows]
        if not samples:
            return []
        return [{"index": index, **write_final_shard(dataset, index, samples)}]

    keyed = plan.map(lambda p: (p[0], (p[0], p[1], p[2]))).partitionBy(shards, lambda shard: shard)
    written = keyed.values().mapPartitionsWithIndex(write)
    stats = executor.collect(written, shards, "corpusforge-build", "writing shards")
    stats.sort(key=lambda s: s["index"])
    if [s["index"] for s in stats] != list(range(shards)):
        raise RuntimeError(f"expected {shards} final shards, got {[s['index'] for s in stats]}")
    return stats


def format_summary(summary: dict[str, Any]) -> str:
    """A human-readable report: counts per drop reason, shards, warnings."""
    total = summary["samples"] or 1
    lines = [
        "build_shards summary",
        f"  samples             {summary['samples']:>10}",
        f"  kept                {summary['kept']:>10}  ({100 * summary['kept'] / total:.1f}%)",
    ]
    for reason, count in summary["dropped"].items():
        # The counts end in the same column as the lines above, also after a long reason name.
        label = f"    {reason} "
        lines.append(f"{label:<22}{count:>{max(1, 32 - max(22, len(label)))}}  ({100 * count / total:.1f}%)")
    languages = summary.get("languages") or {}
    if languages:
        lines.append(
            "  kept per language   "
            + "  ".join(
                f"{language}: {c['kept']}/{c['samples']}"
                for language, c in list(languages.items())[:LANGUAGES_SHOWN]
            )
        )
    lines += [
        f"  shards              {summary['shards']:>10}  "
        f"({summary['samples_per_shard']} samples each, {summary['shards_resumed']} already complete)",
        f"  bytes               {summary['total_bytes']:>10}",
        f"  train with          --train-data '{summary['shard_pattern']}'",
    ]
    for name, count in summary.get("probe_drops", {}).items():
        lines.append(f"      probe {name:<12}{count:>10}")
    for name, counts in summary.get("subset", {}).items():
        flag = "--" + name.replace("_", "-")
        lines.append(
            f"  {flag:<20}{counts['matched']:>10}  of {counts['listed']} listed uids matched "
            f"({counts['unknown']} not in the dataset)"
        )
    if summary["top_fraction_boundary"]:
        lines.append(
            f"  top-fraction cut    clip_score >= {summary['top_fraction_boundary']['clip_score']:.4f}"
        )
    lines += [f"  WARNING: {w}" for w in summary["warnings"]]
    return "\n".join(lines)
