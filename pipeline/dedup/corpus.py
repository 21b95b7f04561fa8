"""The corpus side of dedup: hashes of every stored sample, and its images when a rule needs them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from pipeline.dataset import Dataset
from pipeline.dedup.complexity import colour_signature, complexity
from pipeline.shards.raw_reader import iter_raw_images
from pipeline.shards.raw_writer import RAW_DIR
from schemas.contract import check_schema
from schemas.raw_shard import RAW_SHARD_SCHEMA, STATUS_SUCCESS


def shard_rows(dataset_url: str, shard: int) -> list[tuple[str, int, str, int, int]]:
    """(uid, shard, sha256, signed phash, original pixel count) of a raw shard's successes."""
    dataset = Dataset(dataset_url)
    path = dataset.path(RAW_DIR, f"{dataset.shard_name(shard)}.parquet")
    with dataset.fs.open(path, "rb") as handle:
        table = pq.read_table(handle)
    check_schema(table.schema, RAW_SHARD_SCHEMA, path)
    columns = ["uid", "status", "sha256", "phash", "original_width", "original_height"]
    data = {c: table.column(c).to_pylist() for c in columns}
    rows = []
    for uid, status, sha, ph, w, h in zip(*(data[c] for c in columns), strict=True):
        if status == STATUS_SUCCESS and ph is not None:
            rows.append((uid, shard, sha, ph, int(w or 0) * int(h or 0)))
    return rows


def shard_hashes(dataset_url: str, shard: int) -> tuple[list[str], np.ndarray]:
    """uids and pHashes (int64) of a raw shard's successes."""
    rows = shard_rows(dataset_url, shard)
    return [r[0] for r in rows], np.array([r[3] for r in rows], dtype=np.int64)


def iter_shard_images(dataset_url: str, shard: int, image_ext: str) -> Iterator[tuple[str, bytes]]:
    """(uid, stored image bytes) of every sample in a raw shard's tar, in tar order."""
    return iter_raw_images(Dataset(dataset_url), shard, (image_ext,))


def shard_images(dataset_url: str, shard: int, image_ext: str, uids: Iterable[str]) -> dict[str, bytes]:
    """Stored image bytes of chosen samples of one raw shard."""
    wanted = set(uids)
    found: dict[str, bytes] = {}
    for uid, data in iter_shard_images(dataset_url, shard, image_ext):
        if uid in wanted:
            found[uid] = data
            if len(found) == len(wanted):
                break
    return found


def image_features(item: tuple[str, int, str, tuple[int, int, int], tuple[str, ...]]) -> dict[str, Any]:
    """Complexity and colour signature of chosen samples of one shard (a Spark task).

    ``item`` is (dataset URL, shard, image extension, border colour, uids); returns
    ``{"features": {uid: (complexity, signature bytes)}}``.
    """
    import io

    dataset_url, shard, image_ext, border, uids = item
    features: dict[str, tuple[float, bytes]] = {}
    for uid, data in shard_images(dataset_url, shard, image_ext, uids).items():
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            features[uid] = (complexity(image, border), colour_signature(image, border).tobytes())
    return {"features": features, "images": len(features)}
