"""A second pHash, of the picture's centre: finds copies with a band, caption or watermark at an edge.

pHash keeps only the lowest frequencies of the whole picture, so a dark caption band over the
bottom 14% moves a copy of a synthetic scene 10-20 bits away (docs/benchmarks.md, "Dedup
quality"). The centre hash is
the same pHash computed on the central ``CENTRE_FRACTION`` of each side of the picture (after
removing the border padding of the ``border`` resize mode), where such overlays rarely reach. A
benchmark image and a corpus sample match when either hash is close enough.

Corpus samples do not carry a centre hash from the download job (it would add roughly 0.3 of
its ~4.5 CPU-ms per image): the dedup job computes it from the stored image, once per raw shard,
and commits it with the shard runner as ``dedup/centre_hashes/NNNNN.parquet``. The marker names
the raw shard's token and the centre hash's version, so a cached file is used only while both
are unchanged.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from PIL import Image

from pipeline.dataset import Dataset
from pipeline.dedup.complexity import content
from pipeline.image.phash import phash, to_signed64
from pipeline.runner import ShardCommit, fingerprint, run_shard
from schemas.dedup import CENTRE_HASHES_SCHEMA

log = logging.getLogger(__name__)

# Of each side. 0.6, 0.7 and 0.8 were compared once on the quality benchmark's images: 0.6 found
# as many captioned copies as 0.7 with fewer false pairs; 0.8 still sees part of a 14% band
# (0.88 / 0.51 of captioned photos / scenes found).
CENTRE_FRACTION = 0.6
# Bump when the centre hash changes, so cached corpus hashes are recomputed.
CENTRE_VERSION = 1


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


@dataclass(frozen=True)
class CentreHashReader:
    """uids and centre pHashes (signed int64) of a raw shard's stored images, cached per shard.

    Called inside the search tasks (one per raw shard); the cache is committed with the shard
    runner, so a retried task or a rerun reuses it while the raw shard is unchanged.
    """

    image_ext: str
    border: tuple[int, int, int]

    def __call__(self, dataset: Dataset, shard: int) -> tuple[list[str], np.ndarray]:
        cache = dataset.dedup.centre(shard)
        inputs = fingerprint(
            raw=dataset.raw.shard(shard).token(),
            version=CENTRE_VERSION,
            ext=self.image_ext,
            border=list(self.border),
        )

        computed: list[pa.Table] = []

        def work(commit: ShardCommit) -> dict[str, int]:
            uids, hashes = [], []
            for uid, data in dataset.raw.shard(shard).images(self.image_ext):
                with Image.open(io.BytesIO(data)) as stored:
                    hashes.append(to_signed64(centre_phash(stored.convert("RGB"), self.border)))
                uids.append(uid)
            table = pa.table({"uid": uids, "phash_centre": hashes}, schema=CENTRE_HASHES_SCHEMA)
            commit.write_parquet(table, *cache.table_file.parts)
            computed.append(table)
            return {"hashes": len(uids)}

        run_shard(dataset.storage, cache.output, inputs, work)
        table = computed[0] if computed else cache.table_file.read()
        return table.column("uid").to_pylist(), np.asarray(
            table.column("phash_centre").to_numpy(), dtype=np.int64
        )

    def rows(self, dataset: Dataset, shard: int) -> list[tuple[str, int, int]]:
        """(uid, shard, signed centre pHash) rows of a raw shard, for the shuffle-join execution."""
        uids, hashes = self(dataset, shard)
        return [(uid, shard, int(h)) for uid, h in zip(uids, hashes, strict=True)]
