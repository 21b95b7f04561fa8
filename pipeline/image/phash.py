"""64-bit DCT perceptual hash (pHash), following imagehash.phash's definition.

Greyscale, Lanczos resize to 32x32, 2-D DCT-II, keep the 8x8 lowest frequencies, one bit per
coefficient: above the median or not. Bits are packed row-major, first coefficient in the most
significant bit, as imagehash prints them.

Two modes:
- fast (default): the DCT is two small matrix products (only 8 of 32 output rows and columns are
  needed), and :func:`phash_bytes` decodes JPEGs at reduced scale in greyscale, since a 32x32
  thumbnail is all the hash looks at;
- exact: imagehash's own computation (full decode, scipy's DCT), bit-identical to
  ``imagehash.phash``, for matching hashes published by others.
"""

from __future__ import annotations

import io

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


def thumbnail(image: Image.Image) -> Image.Image:
    """The 32x32 greyscale Lanczos thumbnail the hash is computed from."""
    return image.convert("L").resize((_N, _N), Image.Resampling.LANCZOS)


def phash_bits(image: Image.Image, exact: bool = False) -> np.ndarray:
    """Return the 8x8 boolean pHash bit matrix of ``image``."""
    small = thumbnail(image)
    if exact:
        import scipy.fftpack

        dct = scipy.fftpack.dct(scipy.fftpack.dct(np.asarray(small), axis=0), axis=1)
        low = dct[:HASH_SIZE, :HASH_SIZE]
        return low > np.median(low)
    pixels = np.asarray(small, dtype=np.float64)
    # Rounding removes float noise (~1e-10) so flat images hash like imagehash, whose FFT gives
    # exact zeros there; real coefficient differences are many orders of magnitude larger.
    low = np.round(_DCT @ pixels @ _DCT.T, 6)
    return low > np.median(low)


def phash(image: Image.Image, exact: bool = False) -> int:
    """Return the pHash of ``image`` as an unsigned 64-bit integer."""
    return int.from_bytes(np.packbits(phash_bits(image, exact).flatten()).tobytes(), "big")


def phash_bytes(data: bytes, exact: bool = False) -> int:
    """pHash of an encoded image file (first frame, EXIF orientation ignored as imagehash does).

    The fast mode asks the JPEG decoder for a greyscale image at 1/2 to 1/8 scale, no smaller
    than 64x64: several times less work than a full colour decode, for a 32x32 thumbnail.
    """
    with Image.open(io.BytesIO(data)) as image:
        if not exact and image.format in ("JPEG", "MPO"):
            image.draft("L", (2 * _N, 2 * _N))
        image.load()
        return phash(image, exact)


def to_signed64(value: int) -> int:
    """Store an unsigned 64-bit hash in a signed int64 column (two's complement)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def from_signed64(value: int) -> int:
    """Inverse of :func:`to_signed64`."""
    return value + (1 << 64) if value < 0 else value
