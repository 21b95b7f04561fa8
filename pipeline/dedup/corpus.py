"""The corpus side of dedup: hashes of every stored sample, and the images the audit shows."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from pipeline.dataset import Dataset


def shard_rows(dataset: Dataset, shard: int) -> list[tuple[str, int, str, int, int]]:
    """(uid, shard, sha256, signed phash, original pixel count) of a raw shard's successes."""
    columns = ["uid", "sha256", "phash", "original_width", "original_height"]
    rows = []
    for r in dataset.raw.shard(shard).successes(columns):
        if r["phash"] is not None:
            area = int(r["original_width"] or 0) * int(r["original_height"] or 0)
            rows.append((r["uid"], shard, r["sha256"], r["phash"], area))
    return rows


def shard_hashes(dataset: Dataset, shard: int) -> tuple[list[str], np.ndarray]:
    """uids and pHashes (int64) of a raw shard's successes."""
    rows = shard_rows(dataset, shard)
    return [r[0] for r in rows], np.array([r[3] for r in rows], dtype=np.int64)


def shard_images(dataset: Dataset, shard: int, image_ext: str, uids: Iterable[str]) -> dict[str, bytes]:
    """Stored image bytes of chosen samples of one raw shard."""
    wanted = set(uids)
    found: dict[str, bytes] = {}
    for uid, data in dataset.raw.shard(shard).images(image_ext, wanted):
        found[uid] = data
        if len(found) == len(wanted):
            break
    return found
