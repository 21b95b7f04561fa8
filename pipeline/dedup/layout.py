"""Layout vectors: benchmark candidates for the pictures whose pHash is noise (flat graphics).

pHash thresholds DCT coefficients at their median. A flat, symmetric graphic (an icon, a logo, a
flag) makes most coefficients nearly zero, so its bits are decided by re-encoding noise and its
copies land 12-20 bits away: the hashes found 64-83% of the mildly edited copies of real
graphics (docs/benchmarks.md, "Dedup quality"). The verification thumbnail that every image
already has (:mod:`pipeline.dedup.verify`, 32 px) says much more about such a picture, so with
the layout search (on unless ``--no-layout-search``) it becomes a third candidate source:

- **The vector** of a thumbnail: its luma averaged to :data:`GRID` x :data:`GRID` cells, minus its
  mean, to unit length (so brightness and contrast changes cancel, and the cosine similarity of
  two vectors is the correlation of the two layouts), followed by the same of the thumbnail's
  centre (:data:`CENTRE_BOX`, the region the centre hash looks at) at :data:`CENTRE_GRID` cells,
  so a caption band or a watermark strip at an edge does not hide a copy. A flat thumbnail (no
  luma structure) gets zeros and matches nothing.
- **The benchmark queries** (:data:`QUERIES`): the whole layout of the picture, of its mirror and
  of its 15% central crop (the benchmark hash table's zoomed thumbnails), each against the
  sample's whole layout; and the centre of the picture and of its mirror against the sample's
  centre. Each query has zeros in the other half, so one matrix product gives all five
  similarities (:func:`pipeline.dedup.embeddings.search_shard`).
- **Only drawn benchmark pictures are searched** (:func:`drawn`): flat areas (at least
  :data:`MIN_FLAT_SHARE` of the thumbnail inside exactly flat areas, as the verifier defines
  them) and sharp edges (at least :data:`MIN_EDGE_SHARE` of the pixels next to a step of more than
  :data:`EDGE_STEP` levels): icons, logos, flags, emoji, text. A photograph or a lit scene has
  almost no flat area and its hashes work; a gradient or a near-uniform picture has no edge, and
  its layout (a ramp, or noise) correlates with every other ramp, which the colour check cannot
  always tell apart (docs/benchmarks.md, "Layout candidates").

Colour is left out on purpose: a recoloured copy has the same layout. A layout candidate is only a
candidate, and the same verification as every other candidate (the aligned colour thumbnails)
decides; other pictures of one layout (a logo in other colours) are what it must reject.
"""

from __future__ import annotations

import numpy as np

from pipeline.dedup.verify import (
    INTERIOR_RANGE,
    LUMA,
    THUMBNAIL_SIZE,
    ZOOMS,
    as_array,
    mirrored,
    neighbour_steps,
    split_zoomed,
)

GRID = 8
CENTRE_GRID = 4
# The thumbnail's central 20 of 32 pixels each way (62%, as the centre hash's 60%), in 4 x 4 cells
# of 5 pixels.
CENTRE_BOX = (6, 26)
WIDTH = GRID * GRID + CENTRE_GRID * CENTRE_GRID
QUERY_PICTURE, QUERY_MIRROR, QUERY_CROP, QUERY_CENTRE, QUERY_MIRROR_CENTRE = (
    "picture",
    "mirror",
    "crop_15",
    "centre",
    "mirror_centre",
)
QUERIES = (QUERY_PICTURE, QUERY_MIRROR, QUERY_CROP, QUERY_CENTRE, QUERY_MIRROR_CENTRE)
# The zoomed thumbnail the crop query uses (verify.ZOOMS[CROP_LEVEL] of each side cut off).
CROP_LEVEL = ZOOMS.index(0.15)
# Below this (luma levels, root mean square over the cells) a layout is flat: a zero vector.
FLAT_RMS = 2.0
# Chosen by benchmarks/dedup_quality.py (docs/benchmarks.md, "Layout candidates").
DEFAULT_MIN_SIMILARITY = 0.95
# A drawn picture (:func:`drawn`): on the 370 benchmark images of the quality check, icons, logos,
# flags and emoji have 50-84% flat pixels (10th-90th percentile) and 11-39% edge pixels; photos
# 0-42% and scenes 0-56% flat, scenes 3-9% edge; gradients 0-11% edge, near-uniform pictures none.
MIN_FLAT_SHARE = 0.3
MIN_EDGE_SHARE = 0.1
EDGE_STEP = 32.0


def _cells(luma: np.ndarray, grid: int) -> np.ndarray:
    """(n, grid * grid): mean-free, unit-length cell averages of (n, side, side) luma (zeros when flat)."""
    n, side = len(luma), luma.shape[1]
    step = side // grid
    cells = luma[:, : step * grid, : step * grid].reshape(n, grid, step, grid, step).mean(axis=(2, 4))
    cells = cells.reshape(n, grid * grid)
    cells = cells - cells.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(cells, axis=1, keepdims=True)
    flat = norms < FLAT_RMS * np.sqrt(grid * grid)
    return np.where(flat, 0.0, cells / np.maximum(norms, 1e-6)).astype(np.float32)


def _luma(thumbnails: np.ndarray) -> np.ndarray:
    return (thumbnails.astype(np.float32) @ LUMA).reshape(len(thumbnails), THUMBNAIL_SIZE, THUMBNAIL_SIZE)


def _whole(thumbnails: np.ndarray) -> np.ndarray:
    return _cells(_luma(thumbnails), GRID)


def _centre(thumbnails: np.ndarray) -> np.ndarray:
    low, high = CENTRE_BOX
    return _cells(_luma(thumbnails)[:, low:high, low:high], CENTRE_GRID)


def sample_vectors(thumbnails: np.ndarray) -> np.ndarray:
    """(n, :data:`WIDTH`) float32: each thumbnail's whole layout, then its centre's.

    ``thumbnails``: (n, pixels, 3) as :func:`pipeline.dedup.verify.as_array` gives them.
    """
    if len(thumbnails) == 0:
        return np.zeros((0, WIDTH), dtype=np.float32)
    return np.concatenate([_whole(thumbnails), _centre(thumbnails)], axis=1)


def drawn(thumbnails: np.ndarray) -> np.ndarray:
    """(n,) bool: which thumbnails show a drawn picture (flat areas and sharp edges), the only
    benchmark pictures the layouts are searched for."""
    steps = neighbour_steps(thumbnails)
    flat_share = (steps < INTERIOR_RANGE).mean(axis=1)
    edge_share = (steps > EDGE_STEP).mean(axis=1)
    return (flat_share >= MIN_FLAT_SHARE) & (edge_share >= MIN_EDGE_SHARE)


def benchmark_queries(thumbnails: list[bytes | None], zoomed: list[bytes | None]) -> np.ndarray:
    """(len(QUERIES) * rows, :data:`WIDTH`) float32: the :data:`QUERIES` of each benchmark row, in
    order; zeros, which match nothing, for a row without a thumbnail (precomputed hashes) or whose
    picture is not :func:`drawn`.

    ``thumbnails``, ``zoomed``: the benchmark hash table's ``thumbnail`` and ``thumbnail_zoomed``.
    """
    rows = len(thumbnails)
    out = np.zeros((rows, len(QUERIES), WIDTH), dtype=np.float32)
    have = [i for i, t in enumerate(thumbnails) if t is not None]
    if have:
        searched = drawn(as_array([thumbnails[i] for i in have]))  # type: ignore[misc]
        have = [i for i, keep in zip(have, searched, strict=True) if keep]
    if have:
        picture = as_array([thumbnails[i] for i in have])  # type: ignore[misc]
        mirror = mirrored(picture)
        whole = slice(0, GRID * GRID)
        centre = slice(GRID * GRID, WIDTH)
        out[have, 0, whole] = _whole(picture)
        out[have, 1, whole] = _whole(mirror)
        out[have, 2, whole] = out[have, 0, whole]  # no zoomed thumbnail: the picture again
        cropped = [i for i in have if zoomed[i] is not None]
        if cropped:
            crops = as_array([split_zoomed(zoomed[i])[CROP_LEVEL] for i in cropped])  # type: ignore[arg-type]
            out[cropped, 2, whole] = _whole(crops)
        out[have, 3, centre] = _centre(picture)
        out[have, 4, centre] = _centre(mirror)
    return out.reshape(rows * len(QUERIES), WIDTH)
