"""64-bit DCT perceptual hash (pHash), following imagehash.phash's definition.

Greyscale, Lanczos resize to 32x32, 2-D DCT-II, keep the 8x8 lowest frequencies, one bit per
coefficient: above the median or not. Bits are packed row-major, first coefficient in the most
significant bit, as imagehash prints them.

Two modes:
- fast (default): the DCT is two small matrix products (only 8 of 32 output rows and columns are
  needed); with the C extension ``_phash`` built, the thumbnail and the DCT run in C, the same
  bits in about half the time. The download job hashes every stored image this way, and dedup
  every benchmark image after the download's own decode and resize;
- exact: imagehash's own computation (scipy's DCT), bit-identical to ``imagehash.phash`` of the
  same picture, for matching hashes published by others.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

try:
    from pipeline.image import _phash
except ImportError:  # built by `pip install`; without a C compiler phash() uses numpy (same bits)
    _phash = None

HASH_SIZE = 8
_HIGHFREQ_FACTOR = 4
_N = HASH_SIZE * _HIGHFREQ_FACTOR


def _dct_matrix(n: int, rows: int) -> np.ndarray:
    k = np.arange(rows)[:, None]
    i = np.arange(n)[None, :]
    # scipy.fftpack.dct type II, norm=None: y_k = 2 * sum_n x_n cos(pi k (2n+1) / 2N)
    return 2.0 * np.cos(np.pi * k * (2 * i + 1) / (2 * n))


_DCT = _dct_matrix(_N, HASH_SIZE)
if _phash is not None:
    _phash.configure(np.ascontiguousarray(_DCT, dtype=np.float64).tobytes())


def thumbnail(image: Image.Image) -> Image.Image:
    """The 32x32 greyscale Lanczos thumbnail the hash is computed from.

    Made by the C extension when it is built and takes the picture (the same pixels as Pillow's
    resize, in about half the time: the dedup job computes it for every stored image).
    """
    grey = image.convert("L")
    if _phash is not None:
        pixels = _phash.thumbnail(grey.tobytes(), grey.width, grey.height)
        if pixels is not None:
            return Image.frombytes("L", (_N, _N), pixels)
    return grey.resize((_N, _N), Image.Resampling.LANCZOS)


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
    """Return the pHash of ``image`` as an unsigned 64-bit integer.

    The fast mode's thumbnail and DCT run in the C extension when it is built (the same bits as
    :func:`phash_bits`, in half the time: the download job hashes every stored image).
    """
    if not exact and _phash is not None:
        grey = image.convert("L")
        value = _phash.phash_grey(grey.tobytes(), grey.width, grey.height)
        if value is not None:
            return value
    return int.from_bytes(np.packbits(phash_bits(image, exact).flatten()).tobytes(), "big")


def to_signed64(value: int) -> int:
    """Store an unsigned 64-bit hash in a signed int64 column (two's complement)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def from_signed64(value: int) -> int:
    """Inverse of :func:`to_signed64`."""
    return value + (1 << 64) if value < 0 else value
