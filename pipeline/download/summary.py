"""The end-of-job summary: rows, successes, failure classes, throughput."""

from __future__ import annotations

from collections import Counter
from typing import Any


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
    new_successes = sum(s["successes"] for s in done_now)
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
        "rows_per_second": round(sum(s["rows"] for s in done_now) / seconds, 2) if seconds > 0 else None,
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
    return "\n".join(lines)
