"""What the dedup job computes from each stored corpus image, once, and keeps per raw shard.

For every stored sample of a raw shard: the centre hash (:mod:`pipeline.dedup.centre`), the
low-complexity rule's complexity and colour signature (:mod:`pipeline.dedup.complexity`) and the
verification thumbnails (:mod:`pipeline.dedup.verify`) of the picture and, where it has
letterbox or pillarbox bars, of the picture inside them (:mod:`pipeline.dedup.bars`), all from
one decode of the stored image.
The download job stores none of them (they would add to every download); the dedup job computes
them inside its first task over the shard and commits them with the shard runner as
``dedup/centre_hashes/NNNNN.parquet``. The marker names the raw shard's token and
:data:`FEATURES_VERSION`, so a cached file is used only while both are unchanged: a new download
of the shard, or a new version of any of these features, recomputes it.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from PIL import Image

from pipeline.dataset import Dataset
from pipeline.dedup.bars import unbarred_box
from pipeline.dedup.centre import centre_of
from pipeline.dedup.complexity import colour_signature_of, complexity_of, content
from pipeline.dedup.guard import ImageFeatures
from pipeline.dedup.layout import sample_vectors
from pipeline.dedup.verify import as_array, picture_box, thumbnail
from pipeline.image.options import ImageOptions, image_record
from pipeline.image.phash import phash, to_signed64
from pipeline.runner import ShardCommit, fingerprint, run_shard
from schemas.dedup import CENTRE_HASHES_SCHEMA

log = logging.getLogger(__name__)

# Bump when any cached feature changes, so cached files are recomputed. 1: centre hash only;
# 2: with complexity, colour signature and verification thumbnail; 3: and the thumbnail inside
# letterbox bars, the other features of the picture inside them.
FEATURES_VERSION = 3


def image_features(stored: Image.Image, original_size: tuple[int, int] | None, options: ImageOptions) -> dict:
    """Centre hash (signed), complexity, colour signature and thumbnails of one stored picture.

    ``original_size`` places the picture inside the stored image (the ``border`` padding); without
    it the thumbnail covers the whole stored image. ``thumbnail_unbarred``: of the picture inside
    its letterbox or pillarbox bars, None without bars. The centre hash, complexity and colour
    signature are of the picture inside its bars, so a letterboxed copy has its original's.
    """
    rgb = stored.convert("RGB")
    box = picture_box(rgb.size, original_size, options)
    inside = unbarred_box(rgb, box)
    framed = rgb if inside is None else rgb.crop(tuple(round(v) for v in inside))
    picture = content(framed, options.border_color)
    return {
        "phash_centre": to_signed64(phash(centre_of(picture))),
        "complexity": complexity_of(picture),
        "colour_signature": colour_signature_of(picture).tobytes(),
        "thumbnail": thumbnail(rgb, box),
        "thumbnail_unbarred": None if inside is None else thumbnail(rgb, inside),
    }


def sample_features(data: bytes, original_size: tuple[int, int] | None, options: ImageOptions) -> dict:
    """:func:`image_features` of a stored image file (as the raw shard's tar holds it)."""
    with Image.open(io.BytesIO(data)) as stored:
        stored.load()
        return image_features(stored, original_size, options)


@dataclass(frozen=True)
class FeatureCache:
    """The per-raw-shard cache of :func:`image_features`, computed on first use.

    Called inside Spark tasks (one per raw shard); the cache is committed with the shard runner,
    so a retried task or a rerun reuses it while the raw shard is unchanged. As a callable it is
    the centre-hash reader of the benchmark search (uids and signed centre hashes).
    """

    image: ImageOptions

    def table(self, dataset: Dataset, shard: int) -> pa.Table:
        """The shard's cached features (computed and committed when missing or stale)."""
        cache = dataset.dedup.centre(shard)
        inputs = fingerprint(
            raw=dataset.raw.shard(shard).token(), version=FEATURES_VERSION, image=image_record(self.image)
        )
        computed: list[pa.Table] = []

        def work(commit: ShardCommit) -> dict[str, int]:
            raw = dataset.raw.shard(shard)
            sizes = {
                r["uid"]: (r["original_width"], r["original_height"])
                for r in raw.successes(["uid", "original_width", "original_height"])
            }
            rows = []
            for uid, data in raw.images(self.image.extension):
                size = sizes.get(uid)
                known = size is not None and None not in size
                rows.append({"uid": uid, **sample_features(data, size if known else None, self.image)})
            table = pa.Table.from_pylist(rows, schema=CENTRE_HASHES_SCHEMA)
            commit.write_parquet(table, *cache.table_file.parts)
            computed.append(table)
            return {"samples": len(rows)}

        run_shard(dataset.storage, cache.output, inputs, work)
        return computed[0] if computed else cache.table_file.read()

    def __call__(self, dataset: Dataset, shard: int) -> tuple[list[str], np.ndarray]:
        table = self.table(dataset, shard)
        return table.column("uid").to_pylist(), np.asarray(
            table.column("phash_centre").to_numpy(), dtype=np.int64
        )

    def layouts(self, dataset: Dataset, shard: int) -> tuple[list[str], np.ndarray]:
        """uids and layout vectors (:func:`pipeline.dedup.layout.sample_vectors`) of a raw shard's
        stored samples, from their cached thumbnails (the layout search). A sample with bars has
        two rows: of the picture as stored, and of the picture inside its bars."""
        table = self.table(dataset, shard)
        uids = table.column("uid").to_pylist()
        thumbnails = table.column("thumbnail").to_pylist()
        barred = [
            (u, t) for u, t in zip(uids, table.column("thumbnail_unbarred").to_pylist(), strict=True) if t
        ]
        return uids + [u for u, _ in barred], sample_vectors(as_array(thumbnails + [t for _, t in barred]))

    def rows(self, dataset: Dataset, shard: int) -> list[tuple[str, int, int]]:
        """(uid, shard, signed centre pHash) rows of a raw shard, for the shuffle-join execution."""
        uids, hashes = self(dataset, shard)
        return [(uid, shard, int(h)) for uid, h in zip(uids, hashes, strict=True)]

    def features(
        self, dataset: Dataset, shard: int, uids: set[str] | None = None
    ) -> dict[str, dict[str, Any]]:
        """Cached rows of the shard (only ``uids`` when given), by uid."""
        table = self.table(dataset, shard)
        out = {}
        for row in table.to_pylist():
            if uids is None or row["uid"] in uids:
                out[row["uid"]] = row
        return out


def features_of(row: dict[str, Any]) -> ImageFeatures:
    """The verifier's view of a cached row (or of a benchmark hash row)."""
    return ImageFeatures.from_bytes(
        row.get("complexity"),
        row.get("colour_signature"),
        row.get("thumbnail"),
        row.get("thumbnail_zoomed"),
        row.get("thumbnail_unbarred"),
    )
