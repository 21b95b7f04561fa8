"""How much structure an image has, as pHash sees it.

pHash thresholds the DCT of a 32x32 greyscale thumbnail at its median: on a near-uniform image
(a flat background, a blank page) every coefficient is close to zero and the bits are decided by
compression noise, so unrelated flat images can land within a few bits of each other. The
complexity below is the standard deviation of that same thumbnail (0-255 scale), taken over
the picture's content (without the padding of the ``border`` resize mode); images below a
threshold are matched only under the stricter rule documented in docs/dedup.md.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageChops

from pipeline.image.phash import thumbnail

# Measured by benchmarks/dedup_quality.py (docs/benchmarks.md, "Dedup quality"): unrelated pairs
# whose smaller complexity is below 2 collide (1% within 10 bits: flat pictures of one aspect
# ratio hash alike); from 2 up the rate is 0.001-0.06%, as between structured pictures. 6 is the
# largest threshold whose colour check costs no recall on photographs or synthetic scenes.
DEFAULT_MIN_COMPLEXITY = 6.0
DEFAULT_MAX_SIGNATURE_DISTANCE = 15.0


BORDER_TOLERANCE = 12
_OFF_BORDER = [0] * (BORDER_TOLERANCE + 1) + [255] * (255 - BORDER_TOLERANCE)  # a point() table


def content(image: Image.Image, border: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """``image`` without the padding the ``border`` resize mode added around it.

    Rows and columns at the edges whose every pixel is within BORDER_TOLERANCE of the border
    colour are cut. Without this, a flat picture padded to a square has the contrast of its
    border and would never count as low-complexity, while all flat pictures of one aspect ratio
    hash alike because of that border.
    """
    # In Pillow, not numpy: ~0.2 ms instead of ~2 ms on a 256 px image, and the dedup job runs
    # this on every stored image for the centre hashes. Per channel: 255 where the difference
    # from the border exceeds the tolerance; getbbox() then spans the pixels off in any channel.
    rgb = image.convert("RGB")
    off = ImageChops.difference(rgb, Image.new("RGB", rgb.size, border)).point(_OFF_BORDER * 3)
    box = off.getbbox()
    return image if box is None else image.crop(box)


def complexity(image: Image.Image, border: tuple[int, int, int] = (255, 255, 255)) -> float:
    """Standard deviation of the 32x32 greyscale thumbnail of the image's content (0-255)."""
    return complexity_of(content(image, border))


def complexity_of(picture: Image.Image) -> float:
    """:func:`complexity` of a picture already cut to its content."""
    return float(np.asarray(thumbnail(picture), dtype=np.float64).std())


def colour_signature(
    image: Image.Image, border: tuple[int, int, int] = (255, 255, 255), size: int = 8
) -> np.ndarray:
    """A ``size`` x ``size`` RGB thumbnail (uint8) of the content, compared for low-complexity matches."""
    return colour_signature_of(content(image, border), size)


def colour_signature_of(picture: Image.Image, size: int = 8) -> np.ndarray:
    """:func:`colour_signature` of a picture already cut to its content."""
    small = picture.convert("RGB").resize((size, size), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.uint8)


def signature_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two colour signatures (0-255 scale)."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())
