"""The end-of-job summary: rows, successes, failure classes, throughput."""

from __future__ import annotations

from collections import Counter
from typing import Any

from pipeline.cli_options import recorded
from pipeline.download.error_rates import ErrorRateOptions, error_rate_warnings, merge_hosts


def summarise(
    shard_stats: list[dict[str, Any]], ingest: dict[str, Any], duplicates: dict[str, int], seconds: float
) -> dict[str, Any]:
    """Combine per-shard stats into the job summary (all shards, this run's throughput)."""
    status: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for stats in shard_stats:
        status.update(stats["status"])
        errors.update(stats["errors"])
    done_now = [s for s in shard_stats if not s.get("resumed")]
    # A shard rewritten by --retry-failed counts the rows it fetched again, not all of them.
    new_successes = sum(s.get("new_successes", s["successes"]) for s in done_now)
    return {
        "rows": sum(s["rows"] for s in shard_stats),
        "input_rows": ingest["rows"],
        "shards": len(shard_stats),
        "shards_resumed": len(shard_stats) - len(done_now),
        "successes": status.get("success", 0),
        "failed": status.get("failed", 0),
        "skipped": status.get("skipped", 0),
        "errors": dict(errors.most_common()),
        "duplicates_found": duplicates,
        "stored_bytes": sum(s["stored_bytes"] for s in shard_stats),
        "seconds": round(seconds, 2),
        "successes_this_run": new_successes,
        "images_per_second": round(new_successes / seconds, 2) if seconds > 0 else None,
        "rows_per_second": (
            round(sum(s.get("new_rows", s["rows"]) for s in done_now) / seconds, 2) if seconds > 0 else None
        ),
    }


def format_summary(summary: dict[str, Any]) -> str:
    """A human-readable table of the summary."""
    rows = summary["rows"] or 1
    lines = [
        "download summary",
        f"  rows read           {summary['input_rows']:>10}",
        f"  shards              {summary['shards']:>10}  ({summary['shards_resumed']} already complete)",
        f"  successes           {summary['successes']:>10}  ({100 * summary['successes'] / rows:.1f}%)",
        f"  failed              {summary['failed']:>10}",
        f"  skipped             {summary['skipped']:>10}  (unusable or duplicate input rows)",
    ]
    for name, count in summary["errors"].items():
        lines.append(f"    {name:<18}{count:>10}  ({100 * count / rows:.1f}%)")
    dups = summary["duplicates_found"]
    lines.append(f"  duplicate pairs     {dups.get('duplicate_pair', 0):>10}")
    lines.append(f"  duplicate URLs      {dups.get('duplicate_url', 0):>10}")
    lines.append(f"  stored              {summary['stored_bytes'] / 1e6:>10.1f} MB")
    lines.append(f"  time                {summary['seconds']:>10.1f} s")
    if summary["images_per_second"] is not None:
        lines.append(f"  throughput          {summary['images_per_second']:>10.1f} images/s this run")
    lines.extend(_retry_append_lines(summary))
    return "\n".join(lines)


# -- --retry-failed, --append and the error-rate warnings ------------------------------------------


def retry_and_append_summary(
    shard_stats: list[dict[str, Any]], manifest: dict[str, Any], retry_classes: tuple[str, ...]
) -> dict[str, Any]:
    """``retry``: rows retried and recovered per class this run (with --retry-failed);
    ``lists``: the lists the dataset was made from (once one was added with --append)."""
    out: dict[str, Any] = {}
    if retry_classes:
        retried: Counter[str] = Counter()
        recovered: Counter[str] = Counter()
        for stats in shard_stats:
            retried.update(stats.get("retried") or {})
            recovered.update(stats.get("recovered") or {})
        out["retry"] = {
            "classes": list(retry_classes),
            "shards_rewritten": sum(1 for s in shard_stats if s.get("retried") and not s.get("resumed")),
            "retried": dict(retried.most_common()),
            "recovered": {name: recovered.get(name, 0) for name, _ in retried.most_common()},
        }
    appended = manifest.get("appended") or []
    if appended:
        first_shards = appended[0]["first_shard"]
        lists = [
            {
                "urls": [f["path"] for f in manifest["signature"]["files"]],
                "first_shard": 0,
                "shards": first_shards,
                "rows": manifest["rows"] - sum(p["rows"] for p in appended),
            }
        ]
        lists += [
            {
                "urls": [f["path"] for f in p["signature"]["files"]],
                "first_shard": p["first_shard"],
                "shards": p["shard_count"],
                "rows": p["rows"],
                "marked": p["marked"],
            }
            for p in appended
        ]
        out["lists"] = lists
    return out


def warnings_summary(shard_stats: list[dict[str, Any]], thresholds: ErrorRateOptions) -> dict[str, Any]:
    """``warnings`` (unusual error rates over every shard) and the ``warning_thresholds`` used."""
    status: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for stats in shard_stats:
        status.update(stats["status"])
        errors.update(stats["errors"])
    return {
        "warnings": error_rate_warnings(status, errors, merge_hosts(shard_stats), thresholds),
        "warning_thresholds": recorded(thresholds),
    }


def _retry_append_lines(summary: dict[str, Any]) -> list[str]:
    lines = []
    retry = summary.get("retry")
    if retry:
        total = sum(retry["retried"].values())
        recovered = sum(retry["recovered"].values())
        lines.append(
            f"  retried             {total:>10}  rows, {recovered} recovered, "
            f"{retry['shards_rewritten']} shards rewritten (--retry-failed {','.join(retry['classes'])})"
        )
        for name, count in retry["retried"].items():
            lines.append(f"    {name:<18}{count:>10}  ({retry['recovered'].get(name, 0)} recovered)")
    for number, entry in enumerate(summary.get("lists") or []):
        last = entry["first_shard"] + entry["shards"] - 1
        shards = f"shards {entry['first_shard']}-{last}" if entry["shards"] else "no shard"
        lines.append(
            f"  {'list' if number == 0 else 'appended':<20}{entry['rows']:>10}  rows, {shards}: "
            + ", ".join(entry["urls"])
        )
    for warning in summary.get("warnings") or []:
        lines.append(f"  WARNING: {warning['message']}")
    return lines
