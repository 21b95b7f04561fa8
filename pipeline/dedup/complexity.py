"""How much structure an image has, as pHash sees it.

pHash thresholds the DCT of a 32x32 greyscale thumbnail at its median: on a near-uniform image
(a flat background, a blank page) every coefficient is close to zero and the bits are decided by
compression noise, so unrelated flat images can land within a few bits of each other. The
complexity below is the standard deviation of that same thumbnail (0-255 scale); images below a
threshold are matched only under the stricter rule documented in docs/dedup.md.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from pipeline.image.phash import thumbnail

# Default threshold: see the quality check in docs/benchmarks.md ("Dedup quality").
DEFAULT_MIN_COMPLEXITY = 6.0


def complexity(image: Image.Image) -> float:
    """Standard deviation of the 32x32 greyscale Lanczos thumbnail pHash is computed from."""
    return float(np.asarray(thumbnail(image), dtype=np.float64).std())


def colour_signature(image: Image.Image, size: int = 8) -> np.ndarray:
    """A ``size`` x ``size`` RGB thumbnail (uint8), compared for low-complexity matches."""
    small = image.convert("RGB").resize((size, size), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.uint8)


def signature_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two colour signatures (0-255 scale)."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())
