"""``final/sizes.json`` (what open_clip_train reads) and ``final/manifest.json`` (what was built, from what).

Both are written after every shard is complete, and hold no timings, so a rerun of a finished
build rewrites them byte for byte.
"""

from __future__ import annotations

from typing import Any

from pipeline.dataset import Dataset
from schemas.selection import SELECTION_VERSION


def write_manifest(
    dataset: Dataset,
    shard_stats: list[dict[str, Any]],
    selection: dict[str, Any],
    counts: dict[str, Any],
    upstream: dict[str, Any],
    version: str,
) -> dict[str, Any]:
    """Write sizes.json then manifest.json for shards in index order; return the manifest."""
    shards = [
        {"name": s["shard"], "count": s["count"], "bytes": s["bytes"], "sha256": s["sha256"]}
        for s in shard_stats
    ]
    dataset.storage.write_json({s["name"]: s["count"] for s in shards}, *dataset.final.sizes_file)
    manifest = {
        "format": "webdataset",
        "corpusforge_version": version,
        "shard_count": len(shards),
        "total_samples": sum(s["count"] for s in shards),
        "total_bytes": sum(s["bytes"] for s in shards),
        "shards": shards,
        "selection": selection,
        "counts": counts,
        "upstream": {**upstream, "schemas": {**upstream["schemas"], "selection": SELECTION_VERSION}},
    }
    dataset.storage.write_json(manifest, *dataset.final.manifest_file)
    return manifest
