"""The second opinion on every hash candidate: aligned colour thumbnails must agree too.

A pHash keeps the signs of 64 low-frequency luminance coefficients; pictures of one layout in
other colours (a red circle and a green one on the same background, a logo in two colour
schemes) share them, and flat graphics hash almost at random (docs/dedup.md, "Verification").
Every candidate pair is therefore compared a second time, on a different signal:

- **The thumbnail**: the picture (the resize padding cut off by geometry, from the original size,
  never by looking at colours) reduced to ``THUMBNAIL_SIZE`` x ``THUMBNAIL_SIZE`` pixels by box
  averaging, in YCbCr (luma and two colour-difference channels, JPEG's full-range conversion).
  3 KiB per image, computed once per image next to its hashes.
- **The allowed global change**: a copy may be brighter, darker, more or less saturated, warmer or
  colder, or grey. Before comparing, the corpus side is predicted from the benchmark side by the
  closest such change: luma ``g * Y + o`` and colour ``s * C + o_c`` (one saturation ``s`` for both
  colour channels), with the gains and offsets fitted and then clamped to bounds
  (:data:`BOUNDS`). Saturation 0 (a greyscale copy) is only tried when the copy is grey
  (:data:`GREY_CHROMA`): a muted colour picture is not a grey copy of a vivid one. Flat
  pictures (almost no luma or colour structure) get no allowance at all: one flat colour and
  another cannot be told apart from a recoloured copy, so only the same colour (within
  ``FLAT_TOLERANCE``) matches.
- **Flat areas of drawn pictures** (pixels whose neighbours are all within ``INTERIOR_RANGE``: a
  logo's fill, a flag's stripe) must match within ``INTERIOR_TOLERANCE``, tighter than elsewhere:
  with a few flat colours the fitted change is free enough to turn one palette into another.
- **The distance**: the share of thumbnail pixels whose colour still differs by more than
  ``PIXEL_TOLERANCE`` (Euclidean, 0-255 units) after that change. A copy differs in almost no
  pixel (re-encoding, resizing and blurring move a 32 px thumbnail by a few levels); another
  object colour, shape or background differs in every pixel it covers. The share is taken over
  the whole thumbnail and over the whole minus each ``EDGE_BAND`` edge band (a caption or a
  watermark strip at an edge does not count), and the smallest is the distance.
- **Small objects**: a picture's objects (pixels far from their local background) may cover so
  few pixels that another shape in their place stays under the threshold. Where at least
  ``OBJECT_SHARE`` of the object pixels differ (and ``OBJECT_PIXELS`` or more), that share is
  the distance instead.
- **Re-framed copies**: a pair that does not agree as it is is compared again with the benchmark
  side's central crops (:data:`ZOOMS`: a cropped copy) and then with the pictures inside their
  letterbox or pillarbox bars (:mod:`pipeline.dedup.bars`: a copy with bars, or an original
  with them); the smallest distance counts.

The comparison is a pure function of two thumbnails; :func:`thumbnail_distances` compares many
pairs at once (numpy), as the executors do for each raw shard's candidates.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from pipeline.dedup.guard import ComplexityGuard, ImageFeatures
from pipeline.image.decode import target_scale
from pipeline.image.options import ImageOptions, ResizeMode

THUMBNAIL_SIZE = 32
THUMBNAIL_BYTES = THUMBNAIL_SIZE * THUMBNAIL_SIZE * 3
# Central crops the benchmark side is also compared at: a copy cropped by about this share of
# each side (a 5% crop moves the edges of a 32 px thumbnail by 0.8 px, enough to differ).
ZOOMS = (0.05, 0.1, 0.15, 0.2, 0.25)
# Differences inside one band this deep along an edge (a caption, a watermark strip) are forgiven.
EDGE_BAND = 0.2
PIXEL_TOLERANCE = 24.0
# Colour (Cb, Cr) differences count this many times a luma difference.
COLOUR_WEIGHT = 1.0
# Below these standard deviations (luma, colour) a thumbnail is flat: compared without allowance,
# and with FLAT_TOLERANCE instead of PIXEL_TOLERANCE.
FLAT_LUMA_STD = 4.0
FLAT_COLOUR_STD = 4.0
FLAT_TOLERANCE = 5.0
# Copy pixels at or above SATURATED, or at or below BLACK, in a channel are left out of that
# channel's fit (clipped: a brighter or more saturated copy clips at 255 and at 0).
SATURATED = 250.0
BLACK = 5.0
# Pixels inside an exactly flat area of the original (all 8 neighbours within INTERIOR_RANGE in
# every channel: drawn graphics, not photographs or lit scenes) must match within
# INTERIOR_TOLERANCE after the change: a few flat colours leave the fitted change free enough to
# turn one palette into another (a green stripe into a grey one), while a copy's flat areas come
# through re-encoding, resizing, blurring and the allowed change within a few levels.
INTERIOR_RANGE = 3.0
INTERIOR_TOLERANCE = 20.0
# A greyscale copy is grey: saturation 0 is only tried where at most GREY_SHARE of the copy's
# pixels (of the compared region) have a colour (Cb, Cr) magnitude above GREY_CHROMA. A grey edit
# leaves none (0.00 on all 370 grey copies of the quality check); a muted colour picture (a slate
# circle: 17.6) is not a grey copy of a blue one whose isoluminant features vanish in grey. Nor is
# a grey picture with a small coloured object: 1% let a grey scene with a blue square (7 pixels)
# pass as the grey copy of a red picture whose purple oval is as bright as the red around it.
GREY_CHROMA = 4.0
GREY_SHARE = 0.002
# Saturation changes tried: 0 is a greyscale copy, the others a mild change either way.
SATURATIONS = (
    0.0,
    0.6,
    0.65,
    0.7,
    0.75,
    0.8,
    0.85,
    0.9,
    0.95,
    1.0,
    1.05,
    1.1,
    1.15,
    1.2,
    1.25,
    1.3,
    1.4,
    1.5,
    1.6,
    1.7,
)
# A changed object: where at least OBJECT_PIXELS of the pictures' object pixels (:func:`_objects`)
# differ, and they are at least OBJECT_SHARE of the object pixels, the objects are not the same
# even when they cover under 1% of the thumbnail: a small blue oval and a blue diamond in its
# place on the same teal (6 of 17 object pixels differ, 0.35, while they are 0.8% of the
# thumbnail). Under every edit of the quality check a copy stays at 0.20 or below (a small
# object's edges after a resize, a blur, a crop or bars), other shapes in place of a small object
# in the synthetic world's layout at 0.35 or more.
OBJECT_PIXELS = 4
OBJECT_SHARE = 0.3
# The local background of a pixel: the median colour of its OBJECT_BLOCK-pixel square block,
# interpolated between block centres (a smooth lighting field is background, a small object is not).
OBJECT_BLOCK = 8
# Weight of "through the origin" in the gain fits (0: plain least squares): a single-colour
# picture fixes no gain by least squares, while brightness and white balance are multiplicative.
_ORIGIN_WEIGHT = 0.5


@dataclass(frozen=True)
class Bounds:
    """How far the global colour change between a picture and its copy may go.

    ``gain``: per RGB channel (brightness times white balance); ``balance``: largest ratio of two
    channel gains; ``offset``: per channel, in levels (contrast, black level).
    """

    gain: tuple[float, float] = (0.7, 1.45)
    balance: float = 1.3
    offset: float = 20.0


BOUNDS = Bounds()

# ITU-R BT.601 full range (JPEG, Pillow's "YCbCr"): residuals are measured in these units.
_YCC = np.array(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], dtype=np.float32
)
LUMA = _YCC[0]  # the luma row: Y of an RGB pixel (also the layout vectors' luma)


def picture_box(
    stored_size: tuple[int, int], original_size: tuple[int, int] | None, options: ImageOptions
) -> tuple[int, int, int, int]:
    """Where the picture lies in a stored image: the whole of it, minus the ``border`` padding.

    Computed from the original size the way :func:`pipeline.image.resize.resize` placed the
    picture, never from the pixels: a picture whose own background is near the border colour
    (an icon on white) keeps it, as its copies do. Without the original size, the whole image.
    """
    width, height = stored_size
    if original_size is None or options.resize_mode is not ResizeMode.BORDER or min(original_size) < 1:
        return (0, 0, width, height)
    scale = target_scale(*original_size, options)
    w = max(1, round(original_size[0] * scale))
    h = max(1, round(original_size[1] * scale))
    if (w, h) == (options.image_size, options.image_size) or w > width or h > height:
        return (0, 0, width, height)
    left, top = (width - w) // 2, (height - h) // 2
    return (left, top, left + w, top + h)


def thumbnail(stored: Image.Image, box: tuple[float, float, float, float], zoom: float = 0.0) -> bytes:
    """The verification thumbnail of the picture in ``box``: RGB, ``THUMBNAIL_SIZE`` square, as bytes.

    ``zoom``: of the central ``1 - zoom`` of each side of the picture instead (what a copy cropped
    by ``zoom`` shows).
    """
    left, top, right, bottom = box
    dx, dy = (right - left) * zoom / 2, (bottom - top) * zoom / 2
    region = (left + dx, top + dy, right - dx, bottom - dy)
    size = (THUMBNAIL_SIZE, THUMBNAIL_SIZE)
    return stored.convert("RGB").resize(size, Image.Resampling.BOX, box=region, reducing_gap=None).tobytes()


def zoomed_thumbnails(stored: Image.Image, box: tuple[int, int, int, int]) -> bytes:
    """The thumbnails of the picture's centre at each of :data:`ZOOMS`, one after the other.

    Stored for benchmark images only: a corpus copy cropped by a few percent is compared with the
    benchmark thumbnail of the same region.
    """
    return b"".join(thumbnail(stored, box, zoom) for zoom in ZOOMS)


def split_zoomed(data: bytes) -> list[bytes]:
    """The thumbnails :func:`zoomed_thumbnails` joined."""
    return [data[i : i + THUMBNAIL_BYTES] for i in range(0, len(data), THUMBNAIL_BYTES)]


def as_array(thumbnails: list[bytes] | bytes) -> np.ndarray:
    """(n, pixels, 3) float32 RGB from thumbnail bytes."""
    items = [thumbnails] if isinstance(thumbnails, bytes) else thumbnails
    return np.frombuffer(b"".join(items), dtype=np.uint8).reshape(len(items), -1, 3).astype(np.float32)


def mirrored(thumbnails: np.ndarray) -> np.ndarray:
    """The thumbnails of the mirror images (for matches of the mirrored hash)."""
    n = len(thumbnails)
    side = THUMBNAIL_SIZE
    return thumbnails.reshape(n, side, side, 3)[:, :, ::-1].reshape(n, side * side, 3)


def _edge_masks() -> np.ndarray:
    """(4, pixels): the thumbnail without its top, bottom, left or right ``EDGE_BAND``."""
    side = THUMBNAIL_SIZE
    band = round(side * EDGE_BAND)
    masks = np.ones((4, side, side), dtype=bool)
    masks[0, :band], masks[1, side - band :], masks[2, :, :band], masks[3, :, side - band :] = (False,) * 4
    return masks.reshape(4, -1)


_REGIONS = np.concatenate([np.ones((1, THUMBNAIL_SIZE * THUMBNAIL_SIZE), dtype=bool), _edge_masks()])


@dataclass(frozen=True)
class _Moments:
    """Weighted sums over pixels, per pair and RGB channel (each (n, 3)), that every fit needs.

    With luma ``L`` (``lum``) and colour part ``d = x - L`` of the first picture, a saturation ``s`` turns
    it into ``z = L + s d``; the sums of ``z``, ``z z`` and ``z y`` for any ``s`` follow from these.
    """

    w: np.ndarray
    lum: np.ndarray
    d: np.ndarray
    y: np.ndarray
    ll: np.ndarray
    ld: np.ndarray
    dd: np.ndarray
    ly: np.ndarray
    dy: np.ndarray
    yy: np.ndarray

    @classmethod
    def of(cls, luma: np.ndarray, colour: np.ndarray, y: np.ndarray, weights: np.ndarray) -> _Moments:
        def total(values: np.ndarray) -> np.ndarray:
            return np.einsum("npc,npc->nc", weights, values)

        return cls(
            w=weights.sum(axis=1),
            lum=total(luma),
            d=total(colour),
            y=total(y),
            ll=total(luma * luma),
            ld=total(luma * colour),
            dd=total(colour * colour),
            ly=total(luma * y),
            dy=total(colour * y),
            yy=total(y * y),
        )

    def fit(self, saturation: np.ndarray, bounds: Bounds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Gain and offset (each (n, 3)) for ``saturation`` (n,), clamped, and the squared error (n,)."""
        s = saturation[:, None]
        n = np.maximum(self.w, 1e-6)
        z, zz, zy = self.lum + s * self.d, self.ll + 2 * s * self.ld + s * s * self.dd, self.ly + s * self.dy
        mz, my = z / n, self.y / n
        num = (zy / n - mz * my) + _ORIGIN_WEIGHT * mz * my
        den = (zz / n - mz * mz) + _ORIGIN_WEIGHT * mz * mz
        gain = np.where(den > 1e-6, num / np.maximum(den, 1e-6), 1.0)
        grey = saturation == 0.0
        # A greyscale copy is grey: one gain and one offset for the three channels (no tint).
        gain[grey] = (num[grey].sum(axis=1) / np.maximum(den[grey].sum(axis=1), 1e-6))[:, None]
        gain = np.clip(gain, *bounds.gain)
        middle = np.sqrt(gain.max(axis=1) * gain.min(axis=1))[:, None]
        spread = np.sqrt(bounds.balance)
        gain = np.clip(gain, middle / spread, middle * spread)
        offset = np.clip(my - gain * mz, -bounds.offset, bounds.offset)
        offset[grey] = offset[grey].mean(axis=1, keepdims=True)
        error = self.yy - 2 * gain * zy - 2 * offset * self.y + gain * gain * zz + 2 * gain * offset * z
        error = error + offset * offset * self.w
        return gain, offset, error.sum(axis=1)


def _fit_and_errors(
    luma: np.ndarray, colour: np.ndarray, y: np.ndarray, weights: np.ndarray, bounds: Bounds, grey: np.ndarray
) -> np.ndarray:
    """Per-pixel errors (n, p) of b under the allowed change that fits it best (least squares);
    ``grey`` (n,): the copies that may be explained as greyscale (:func:`_grey`)."""
    # Channels the copy saturated tell nothing about the gain (white stays white when brighter).
    moments = _Moments.of(luma, colour, y, weights[..., None] * (y < SATURATED) * (y > BLACK))
    n = len(y)
    best_error = np.full(n, np.inf)
    best_gain = np.ones((n, 3))
    best_offset = np.zeros((n, 3))
    best_saturation = np.ones(n)
    for value in SATURATIONS:
        saturation = np.full(n, value)
        gain, offset, error = moments.fit(saturation, bounds)
        if value == 0.0:
            error = np.where(grey, error, np.inf)
        better = error < best_error
        best_error[better], best_gain[better], best_offset[better] = (
            error[better],
            gain[better],
            offset[better],
        )
        best_saturation[better] = value
    z = luma + best_saturation[:, None, None].astype(np.float32) * colour
    predicted = np.clip(
        best_gain[:, None].astype(np.float32) * z + best_offset[:, None].astype(np.float32), 0, 255
    )
    return _errors(y, predicted)


def _coloured(y: np.ndarray) -> np.ndarray:
    """(n, p) bool: the copy's pixels with a colour (Cb, Cr) magnitude above GREY_CHROMA."""
    return np.sqrt(((y @ _YCC[1:].T) ** 2).sum(axis=2)) > GREY_CHROMA


def _grey(coloured: np.ndarray, region: np.ndarray) -> np.ndarray:
    """(n,) bool: whether each copy is grey over the pixels of ``region`` (p,) it is compared on."""
    return (coloured & region).sum(axis=1) <= GREY_SHARE * max(int(region.sum()), 1)


def _errors(y: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Per-pixel colour difference (n, p): Euclidean in YCbCr, colour at half resolution (as JPEG)."""
    residual = (y - predicted) @ _YCC.T
    n, side = len(residual), THUMBNAIL_SIZE
    blocks = residual[..., 1:].reshape(n, side // 2, 2, side // 2, 2, 2).mean(axis=(2, 4), keepdims=True)
    colour = np.broadcast_to(blocks, (n, side // 2, 2, side // 2, 2, 2)).reshape(n, side * side, 2)
    return np.sqrt(residual[..., 0] ** 2 + COLOUR_WEIGHT**2 * (colour**2).sum(axis=2))


def _interior(t: np.ndarray) -> np.ndarray:
    """(n, pixels): whether each pixel lies inside a flat area (all 8 neighbours within INTERIOR_RANGE)."""
    return neighbour_steps(t) < INTERIOR_RANGE


def neighbour_steps(t: np.ndarray) -> np.ndarray:
    """(n, pixels): each pixel's largest difference, in any channel, from its 8 neighbours."""
    n, side = len(t), THUMBNAIL_SIZE
    grid = t.reshape(n, side, side, 3)
    spread = np.zeros((n, side, side), dtype=np.float32)
    # Each neighbour relation once (right, down and both diagonals), credited to both pixels.
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        x0, x1 = max(0, -dx), side - max(0, dx)
        here = spread[:, : side - dy, x0:x1]
        there = spread[:, dy:, x0 + dx : x1 + dx]
        step = np.abs(grid[:, : side - dy, x0:x1] - grid[:, dy:, x0 + dx : x1 + dx]).max(axis=3)
        np.maximum(here, step, out=here)
        np.maximum(there, step, out=there)
    return spread.reshape(n, -1)


def _flat(t: np.ndarray) -> np.ndarray:
    ycc = t @ _YCC.T
    return (ycc[..., 0].std(axis=1) < FLAT_LUMA_STD) & (
        ycc[..., 1:].std(axis=1).max(axis=1) < FLAT_COLOUR_STD
    )


def _objects(ycc: np.ndarray) -> np.ndarray:
    """(n, p) bool: the pixels further than PIXEL_TOLERANCE (YCbCr) from their local background
    (see :data:`OBJECT_BLOCK`): the picture's objects and their edges."""
    n, side, k = len(ycc), THUMBNAIL_SIZE, OBJECT_BLOCK
    blocks = side // k
    grid = ycc.reshape(n, blocks, k, blocks, k, 3).transpose(0, 1, 3, 2, 4, 5)
    medians = np.median(grid.reshape(n, blocks, blocks, k * k, 3), axis=3)
    background = ndimage.zoom(medians, (1, k, k, 1), order=1, grid_mode=True, mode="nearest")
    far = np.sqrt(((ycc.reshape(n, side, side, 3) - background) ** 2).sum(axis=3)) > PIXEL_TOLERANCE
    return far.reshape(n, -1)


class _ObjectPixels:
    """The object pixels of both pictures of each pair (:func:`_objects`), computed on first use:
    most candidates differ in far more than OBJECT_SHARE of their pixels and never need them."""

    def __init__(self, a: np.ndarray, b: np.ndarray) -> None:
        self._a, self._b = a, b
        self._known = np.zeros(len(a), dtype=bool)
        self._objects = np.zeros(a.shape[:2], dtype=bool)

    def of(self, pairs: np.ndarray) -> np.ndarray:
        """(len(pairs), p) bool: the pixels that are an object in either picture of each pair."""
        new = pairs[~self._known[pairs]]
        if len(new):
            self._objects[new] = _objects(self._a[new] @ _YCC.T) | _objects(self._b[new] @ _YCC.T)
            self._known[new] = True
        return self._objects[pairs]


def thumbnail_distances(a: np.ndarray, b: np.ndarray, bounds: Bounds = BOUNDS) -> np.ndarray:
    """Distance (0-1: the share of differing pixels, or of differing object pixels where the
    objects changed) of each pair ``a[i]``, ``b[i]`` (see module doc).

    ``a`` and ``b``: (n, pixels, 3) arrays from :func:`as_array`; ``a`` is the side the other is a
    copy of (the benchmark image, or the kept sample).
    """
    if len(a) == 0:
        return np.zeros(0, dtype=np.float32)
    a, b = a.astype(np.float32), b.astype(np.float32)
    luma = np.repeat((a @ LUMA)[..., None], 3, axis=2)
    colour = a - luma
    flat = _flat(a) | _flat(b)
    interior = _interior(a)
    coloured = _coloured(b)
    objects = _ObjectPixels(a, b)
    distance = np.ones(len(a), dtype=np.float32)
    todo = np.arange(len(a))
    # The whole picture first; where any pixel differs, all of it but one edge band (a caption,
    # a watermark strip), each with its own fitted colour change (an overlay can bend the whole
    # picture's fit so far that every pixel differs: a dark band over an icon on white).
    for region in _REGIONS:
        lu, co, y = luma[todo], colour[todo], b[todo]
        grey = _grey(coloured[todo], region)
        weights = np.broadcast_to(region, y.shape[:2]).astype(np.float32)
        errors = _fit_and_errors(lu, co, y, weights, bounds, grey)
        # Again with pixels far off down-weighted, so an overlay does not bend the fitted change.
        weights = weights * np.minimum(1.0, PIXEL_TOLERANCE / np.maximum(errors, 1e-6))
        errors = _fit_and_errors(lu, co, y, weights, bounds, grey)
        differs = (errors > PIXEL_TOLERANCE) | (interior[todo] & (errors > INTERIOR_TOLERANCE))
        if flat[todo].any():
            f = flat[todo]
            differs[f] = _errors(y[f], a[todo][f]) > FLAT_TOLERANCE
        share = differs[:, region].mean(axis=1)
        # A changed object counts as the share of the object pixels that differ (OBJECT_SHARE or
        # more); only pairs below that share can change.
        close = np.flatnonzero(share < OBJECT_SHARE)
        if len(close):
            shown = objects.of(todo[close]) & region
            changed = (differs[close] & shown).sum(axis=1)
            changed_share = changed / np.maximum(shown.sum(axis=1), 1)
            other = (changed >= OBJECT_PIXELS) & (changed_share >= OBJECT_SHARE)
            share[close[other]] = np.maximum(share[close[other]], changed_share[other])
        distance[todo] = np.minimum(distance[todo], share)
        todo = todo[distance[todo] > 0]
        if not len(todo):
            break
    return distance


def thumbnail_distance(a: bytes, b: bytes, mirror: bool = False) -> float:
    """:func:`thumbnail_distances` of one pair of thumbnail bytes (``mirror``: compare b with a's mirror)."""
    left = as_array(a)
    return float(thumbnail_distances(mirrored(left) if mirror else left, as_array(b))[0])


# Chosen by benchmarks/dedup_quality.py (docs/benchmarks.md, "Dedup quality").
DEFAULT_MAX_THUMBNAIL_DISTANCE = 0.01


@dataclass(frozen=True)
class Verdict:
    """What the checks said of one candidate pair."""

    guard: bool  # the low-complexity rule accepts the pair
    thumbnail_distance: float | None  # None: not compared (a side has no thumbnail, or off)
    accepted: bool  # both agree: the pair is a duplicate

    @property
    def verified(self) -> bool | None:
        """Whether the thumbnails agreed (None when they were not compared)."""
        return None if self.thumbnail_distance is None else self.accepted


@dataclass(frozen=True)
class Verifier:
    """The second opinion on hash candidates: the low-complexity rule, then the thumbnails.

    ``max_thumbnail_distance < 0`` turns the thumbnail comparison off (the rule alone decides).
    A pair where a side has no thumbnail (precomputed benchmark hashes) is judged by the rule
    alone: for decontamination a false positive costs one image, a miss an evaluation.
    """

    guard: ComplexityGuard
    max_thumbnail_distance: float = DEFAULT_MAX_THUMBNAIL_DISTANCE

    @property
    def compares_thumbnails(self) -> bool:
        return self.max_thumbnail_distance >= 0

    def check(
        self, pairs: list[tuple[ImageFeatures, ImageFeatures]], symmetric: bool = False
    ) -> list[Verdict]:
        """A verdict per (original, candidate copy) pair.

        ``symmetric`` (within-corpus pairs, where either may be the copy): the smaller distance
        of the two directions counts.
        """
        guard = [self.guard.accepts(a, b) for a, b in pairs]
        distances: list[float | None] = [None] * len(pairs)
        if self.compares_thumbnails:
            both = [
                i for i, (a, b) in enumerate(pairs) if a.thumbnail is not None and b.thumbnail is not None
            ]
            found = dict.fromkeys(both, math.inf)
            thumbs = [(pairs[i][0].thumbnail, pairs[i][1].thumbnail) for i in both]
            _lower(found, both, thumbs, symmetric)  # type: ignore[arg-type]

            def unconfirmed(has: Callable[[ImageFeatures, ImageFeatures], bool]) -> list[int]:
                return [i for i in both if found[i] > self.max_thumbnail_distance and has(*pairs[i])]

            # Not confirmed as they are: the benchmark side's central crops (a cropped copy).
            for level in range(len(ZOOMS)):
                retry = unconfirmed(lambda a, _: a.zoomed is not None)
                crops = [(split_zoomed(pairs[i][0].zoomed)[level], pairs[i][1].thumbnail) for i in retry]  # type: ignore[arg-type]
                _lower(found, retry, crops, False)  # type: ignore[arg-type]
            # Not confirmed either: the pictures inside their bars, where either side has any.
            retry = unconfirmed(lambda a, b: a.unbarred is not None or b.unbarred is not None)
            _lower(found, retry, [(_inside(pairs[i][0]), _inside(pairs[i][1])) for i in retry], symmetric)
            for i, value in found.items():
                distances[i] = round(value, 6)
        return [
            Verdict(g, d, g and (d is None or d <= self.max_thumbnail_distance))
            for g, d in zip(guard, distances, strict=True)
        ]


_BATCH = 256


def _lower(
    found: dict[int, float], indices: list[int], thumbnails: list[tuple[bytes, bytes]], both_ways: bool
) -> None:
    """Lower ``found[i]`` to the distance of the pair of thumbnails given for each of ``indices``
    (in batches; ``both_ways``: the smaller of the two directions)."""
    for start in range(0, len(indices), _BATCH):
        left, right = (as_array(list(side)) for side in zip(*thumbnails[start : start + _BATCH], strict=True))
        values = thumbnail_distances(left, right)
        if both_ways:
            values = np.minimum(values, thumbnail_distances(right, left))
        for i, value in zip(indices[start : start + _BATCH], values, strict=True):
            found[i] = min(found[i], float(value))


def _inside(features: ImageFeatures) -> bytes:
    """The thumbnail of the picture inside its bars, or of the picture when it has none."""
    return features.unbarred if features.unbarred is not None else features.thumbnail  # type: ignore[return-value]
