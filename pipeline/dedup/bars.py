"""Letterbox and pillarbox bars: where a picture was re-framed on a canvas of one colour.

A video still with black bars above and below, or a post padded to a square, holds the picture
untouched in a smaller box; its verification thumbnail (the whole picture box) then lines up with
no thumbnail of the original. :func:`unbarred_box` finds that smaller box so the verifier can
compare the picture inside the bars (:mod:`pipeline.dedup.verify`).

Bars are a pair of opposite bands (top and bottom, or left and right) of one colour, each at
least :data:`MIN_BAR` of the side deep, while the other two edges are not banded in that colour.
The last condition keeps a drawing on a plain background (an icon with white margins all round)
as it is: its margins are its own, and its copies keep them.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

# A band row (or column) is one whose pixels are within BAR_TOLERANCE of the band's colour in every
# channel, all but BAR_OUTLIERS of them (JPEG ringing, a stray bright pixel). On letterboxed copies
# of 73 photographs, scenes and graphics (JPEG q90) 16, 24 and 32 all find the picture so that 72
# thumbnails agree with the original's (the 73rd has a black background: no bars to find); 40
# also eats the white margin of a picture on white.
BAR_TOLERANCE = 24
BAR_OUTLIERS = 0.02
# Each bar at least this share of the side; the picture inside at least MIN_INSIDE of it.
MIN_BAR = 0.03
MIN_INSIDE = 0.4
# The outermost pixels of a stored picture are blended with the resize padding next to them (and
# JPEG subsamples colour in 2x2 blocks): the bar's colour is read this far in, and these first
# rows need not match it.
EDGE_SKIP = 2

Box = tuple[float, float, float, float]


def _band_pixels(lines: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """(k, length) bool: the pixels of ``lines`` (k, length, 3, uint8) within BAR_TOLERANCE of
    ``colour`` in every channel (per channel on uint8: no int16 copy of the picture)."""
    close = np.ones(lines.shape[:2], dtype=bool)
    for channel in range(3):
        value = int(colour[channel])
        plane = lines[..., channel]
        close &= (plane >= value - BAR_TOLERANCE) & (plane <= value + BAR_TOLERANCE)
    return close


def _is_band(close: np.ndarray) -> np.ndarray:
    """(k,) whether each line of ``close`` (from :func:`_band_pixels`) is a band line."""
    return close.mean(axis=1) >= 1.0 - BAR_OUTLIERS


def _depth(lines: np.ndarray, colour: np.ndarray) -> float:
    """How deep the band of ``colour`` at the start of ``lines`` (k, length, 3) reaches, to a
    fraction of a line (``len(lines)`` when it fills them): the first line off the band is usually
    a blend of band and picture (the picture's edge rarely falls on a pixel boundary after
    resizing), so the part of it that is picture is estimated from how far it is off the band's
    colour against the line after it."""
    off = np.flatnonzero(~_is_band(_band_pixels(lines[EDGE_SKIP:], colour)))
    if not len(off):
        return float(len(lines))
    first = int(off[0]) + EDGE_SKIP
    if first + 1 >= len(lines):
        return float(first)
    blended = np.abs(lines[first].astype(np.int16) - colour).mean()
    picture = np.abs(lines[first + 1].astype(np.int16) - colour).mean()
    share = min(1.0, blended / picture) if picture > 0 else 1.0
    return first + 1.0 - share


def _bars(pixels: np.ndarray) -> tuple[float, float] | None:
    """(first, second) depth of the bars at the start and the end of axis 0 of (h, w, 3) ``pixels``,
    with the other axis's edges checked not to be banded in the same colour; None without bars."""
    side = pixels.shape[0]
    colour = np.median(pixels[EDGE_SKIP], axis=0).astype(np.int16)
    if np.abs(np.median(pixels[-1 - EDGE_SKIP], axis=0).astype(np.int16) - colour).max() > BAR_TOLERANCE:
        return None
    least = max(1, round(MIN_BAR * side))
    # Most pictures have no band at all: the lines down to the shallowest bar tell, at both ends.
    for end in (pixels[EDGE_SKIP:least], pixels[side - least : side - EDGE_SKIP]):
        if len(end) and not _is_band(_band_pixels(end, colour)).all():
            return None
    # Neither bar can reach deeper than this and leave MIN_INSIDE of the side between them.
    scan = int(side * (1 - MIN_INSIDE) - least) + 2
    first = _depth(pixels[:scan], colour)
    last = _depth(pixels[::-1][:scan], colour)
    if first < least or last < least or side - first - last < MIN_INSIDE * side:
        return None
    inside = pixels[int(np.ceil(first)) : side - int(np.ceil(last))]
    sides = np.stack([inside[:, EDGE_SKIP], inside[:, -1 - EDGE_SKIP]])  # (2, inside rows, 3)
    if _is_band(_band_pixels(sides, colour)).any():
        return None  # the same colour runs down a side too: a background, not bars
    return first, last


def unbarred_box(stored: Image.Image, box: Box) -> Box | None:
    """The part of ``box`` (the picture in the stored image) inside letterbox or pillarbox bars, or
    None when the picture has none (see the module docstring)."""
    left, top, right, bottom = box
    pixels = np.asarray((stored if stored.mode == "RGB" else stored.convert("RGB")).crop(box))
    if pixels.shape[0] < 8 or pixels.shape[1] < 8:
        return None
    rows = _bars(pixels)
    if rows is not None:
        return (left, top + rows[0], right, bottom - rows[1])
    columns = _bars(pixels.transpose(1, 0, 2))
    if columns is not None:
        return (left + columns[0], top, right - columns[1], bottom)
    return None
