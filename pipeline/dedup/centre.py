"""A second pHash, of the picture's centre: finds copies with a band, caption or watermark at an edge.

pHash keeps only the lowest frequencies of the whole picture, so a dark caption band over the
bottom 14% moves a copy of a synthetic scene 10-20 bits away (docs/benchmarks.md, "Dedup
quality"). The centre hash is
the same pHash computed on the central ``CENTRE_FRACTION`` of each side of the picture (after
removing the border padding of the ``border`` resize mode), where such overlays rarely reach. A
benchmark image and a corpus sample match when either hash is close enough.

Corpus samples do not carry a centre hash from the download job (it would add roughly 0.3 of
its ~4.5 CPU-ms per image): the dedup job computes it from the stored image, once per raw shard, and keeps
it in ``dedup/centre_hashes/NNNNN.parquet`` for reruns. A cached file is used only while its raw
tar is unchanged (same size and modification key).
"""

from __future__ import annotations

import io
import logging

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from pipeline.dataset import Dataset
from pipeline.dedup.complexity import content
from pipeline.image.phash import phash, to_signed64
from pipeline.shards.raw_reader import iter_raw_images
from pipeline.shards.raw_writer import RAW_DIR
from schemas.dedup import DEDUP_DIR

log = logging.getLogger(__name__)

# Of each side. 0.6, 0.7 and 0.8 were compared once on the quality benchmark's images: 0.6 found
# as many captioned copies as 0.7 with fewer false pairs; 0.8 still sees part of a 14% band
# (0.88 / 0.51 of captioned photos / scenes found).
CENTRE_FRACTION = 0.6
CENTRE_DIR = "centre_hashes"
# Bump when the centre hash changes, so cached corpus hashes are recomputed.
CENTRE_VERSION = 1
_RAW_KEY = b"corpusforge.raw_tar"
_VERSION_KEY = b"corpusforge.centre_version"


def centre_region(image: Image.Image, border: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """The central ``CENTRE_FRACTION`` of each side of ``image`` without its border padding."""
    picture = content(image, border)
    width, height = picture.size
    dx, dy = width * (1 - CENTRE_FRACTION) / 2, height * (1 - CENTRE_FRACTION) / 2
    box = (
        round(dx),
        round(dy),
        max(round(dx) + 1, round(width - dx)),
        max(round(dy) + 1, round(height - dy)),
    )
    return picture.crop(box)


def centre_phash(image: Image.Image, border: tuple[int, int, int] = (255, 255, 255)) -> int:
    """Unsigned 64-bit pHash of :func:`centre_region`."""
    return phash(centre_region(image, border))


def _raw_tar_key(dataset: Dataset, shard: int) -> str:
    path = dataset.path(RAW_DIR, f"{dataset.shard_name(shard)}.tar")
    return f"{dataset.fs.size(path)}:{dataset.fs.ukey(path)}"


def _cached(dataset: Dataset, name: str, raw_key: str) -> pa.Table | None:
    path = dataset.path(DEDUP_DIR, CENTRE_DIR, name)
    if not dataset.fs.exists(path):
        return None
    with dataset.fs.open(path, "rb") as handle:
        table = pq.read_table(handle)
    meta = table.schema.metadata or {}
    if meta.get(_RAW_KEY) != raw_key.encode() or meta.get(_VERSION_KEY) != str(CENTRE_VERSION).encode():
        log.info("recomputing %s: its raw shard or the centre hash changed", path)
        return None
    return table


def shard_centre_hashes(
    dataset_url: str, shard: int, image_ext: str, border: tuple[int, int, int]
) -> tuple[list[str], np.ndarray]:
    """uids and centre pHashes (signed int64) of every stored image of a raw shard (cached)."""
    dataset = Dataset(dataset_url)
    name = f"{dataset.shard_name(shard)}.parquet"
    raw_key = _raw_tar_key(dataset, shard)
    table = _cached(dataset, name, raw_key)
    if table is None:
        uids, hashes = [], []
        for uid, data in iter_raw_images(dataset, shard, (image_ext,)):
            with Image.open(io.BytesIO(data)) as stored:
                hashes.append(to_signed64(centre_phash(stored.convert("RGB"), border)))
            uids.append(uid)
        schema = pa.schema(
            [pa.field("uid", pa.string()), pa.field("phash_centre", pa.int64())],
            metadata={_RAW_KEY: raw_key.encode(), _VERSION_KEY: str(CENTRE_VERSION).encode()},
        )
        table = pa.table({"uid": uids, "phash_centre": hashes}, schema=schema)
        dataset.makedirs(DEDUP_DIR, CENTRE_DIR)
        dataset.write_parquet_atomic(table, DEDUP_DIR, CENTRE_DIR, name)  # retry-safe: same content
    return table.column("uid").to_pylist(), np.asarray(
        table.column("phash_centre").to_numpy(), dtype=np.int64
    )


def shard_centre_rows(
    dataset_url: str, shard: int, image_ext: str, border: tuple[int, int, int]
) -> list[tuple[str, int, int]]:
    """(uid, shard, signed centre pHash) rows of a raw shard, for the shuffle-join execution."""
    uids, hashes = shard_centre_hashes(dataset_url, shard, image_ext, border)
    return [(uid, shard, int(h)) for uid, h in zip(uids, hashes, strict=True)]
