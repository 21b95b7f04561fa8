"""64-bit DCT perceptual hash (pHash), following imagehash.phash's definition.

Greyscale, Lanczos resize to 32x32, 2-D DCT-II, keep the 8x8 lowest frequencies, one bit per
coefficient: above the median or not. Bits are packed row-major, first coefficient in the most
significant bit, as imagehash prints them. The DCT is two small matrix products instead of a
full FFT, since only 8 of 32 output rows and columns are needed.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

HASH_SIZE = 8
_HIGHFREQ_FACTOR = 4
_N = HASH_SIZE * _HIGHFREQ_FACTOR


def _dct_matrix(n: int, rows: int) -> np.ndarray:
    k = np.arange(rows)[:, None]
    i = np.arange(n)[None, :]
    # scipy.fftpack.dct type II, norm=None: y_k = 2 * sum_n x_n cos(pi k (2n+1) / 2N)
    return 2.0 * np.cos(np.pi * k * (2 * i + 1) / (2 * n))


_DCT = _dct_matrix(_N, HASH_SIZE)


def phash_bits(image: Image.Image) -> np.ndarray:
    """Return the 8x8 boolean pHash bit matrix of ``image``."""
    small = image.convert("L").resize((_N, _N), Image.Resampling.LANCZOS)
    pixels = np.asarray(small, dtype=np.float64)
    # Rounding removes float noise (~1e-10) so flat images hash like imagehash, whose FFT gives
    # exact zeros there; real coefficient differences are many orders of magnitude larger.
    low = np.round(_DCT @ pixels @ _DCT.T, 6)
    return low > np.median(low)


def phash(image: Image.Image) -> int:
    """Return the pHash of ``image`` as an unsigned 64-bit integer."""
    return int.from_bytes(np.packbits(phash_bits(image).flatten()).tobytes(), "big")


def to_signed64(value: int) -> int:
    """Store an unsigned 64-bit hash in a signed int64 column (two's complement)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def from_signed64(value: int) -> int:
    """Inverse of :func:`to_signed64`."""
    return value + (1 << 64) if value < 0 else value
