"""64-bit DCT perceptual hash (pHash), following imagehash.phash's definition.

Greyscale, Lanczos resize to 32x32, 2-D DCT-II, keep the 8x8 lowest frequencies, one bit per
coefficient: above the median or not. Bits are packed row-major, first coefficient in the most
significant bit, as imagehash prints them.

Two modes:
- fast (default): the DCT is two small matrix products (only 8 of 32 output rows and columns are
  needed), and :func:`phash_bytes` decodes JPEGs at reduced scale in greyscale and box-reduces
  other large images first, since a 32x32 thumbnail is all the hash looks at. Baseline JPEGs of
  512 px and more on the short side go through the C extension ``_jpegdc``, which reads only
  the DC coefficients (the 1/8-scale picture libjpeg would give) and skips the AC coefficients
  several Huffman symbols at a time, then does the thumbnail and DCT in C: the same hash as the
  Pillow path, bit for bit, in about half the time;
- exact: imagehash's own computation (full decode, scipy's DCT), bit-identical to
  ``imagehash.phash``, for matching hashes published by others.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

try:
    from pipeline.image import _jpegdc
except ImportError:  # built by `pip install`; without a C compiler phash_bytes uses Pillow only
    _jpegdc = None

HASH_SIZE = 8
_HIGHFREQ_FACTOR = 4
_N = HASH_SIZE * _HIGHFREQ_FACTOR


def _dct_matrix(n: int, rows: int) -> np.ndarray:
    k = np.arange(rows)[:, None]
    i = np.arange(n)[None, :]
    # scipy.fftpack.dct type II, norm=None: y_k = 2 * sum_n x_n cos(pi k (2n+1) / 2N)
    return 2.0 * np.cos(np.pi * k * (2 * i + 1) / (2 * n))


_DCT = _dct_matrix(_N, HASH_SIZE)
if _jpegdc is not None:
    _jpegdc.configure(np.ascontiguousarray(_DCT, dtype=np.float64).tobytes())


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
    """Return the pHash of ``image`` as an unsigned 64-bit integer.

    The fast mode's thumbnail and DCT run in the C extension when it is built (the same bits as
    :func:`phash_bits`, in half the time: the download job hashes every stored image).
    """
    if not exact and _jpegdc is not None:
        grey = image.convert("L")
        value = _jpegdc.phash_grey(grey.tobytes(), grey.width, grey.height)
        if value is not None:
            return value
    return int.from_bytes(np.packbits(phash_bits(image, exact).flatten()).tobytes(), "big")


def phash_bytes(data: bytes, exact: bool = False) -> int:
    """pHash of an encoded image file (first frame, EXIF orientation ignored as imagehash does).

    The fast mode avoids work on pixels a 32x32 thumbnail does not need: JPEGs are decoded by
    libjpeg at 1/2 to 1/8 scale in greyscale (its DCT scaling; chroma is never upsampled or
    converted), no smaller than 64 pixels on the short side; other large images are box-reduced
    by an integer factor, no smaller than 256 pixels (box-reducing further moves the hash of
    smooth photos away from imagehash's by several bits). What is left of a JPEG's time is
    almost all entropy decoding, which no decoder can skip; the C extension does that part with
    about half of libjpeg-turbo's work for baseline JPEGs whose 1/8-scale picture is what draft()
    would give (short side >= 512 px), and gives the identical hash.
    """
    if not exact and _jpegdc is not None:
        limit = Image.MAX_IMAGE_PIXELS or 0  # larger files go to Pillow, which warns or refuses
        value = _jpegdc.phash_dc(data, _DRAFT_MIN_SIDE, 2 * _REDUCE_SIDE, int(limit))
        if value is not None:
            return value
    with Image.open(io.BytesIO(data)) as image:
        if exact:
            image.load()
            return phash(image, exact=True)
        if image.format in ("JPEG", "MPO"):
            image.draft("L", (_DRAFT_SIDE, _DRAFT_SIDE))
        # Feed the decoder the whole file at once, not in 64 KiB pieces (a few % of a JPEG's time).
        image.decodermaxblock = max(image.decodermaxblock, len(data))
        image.load()
        return phash(_reduced(image), exact=False)


_DRAFT_SIDE = 2 * _N  # JPEG DCT scaling stops before the short side drops below this
_REDUCE_SIDE = 8 * _N  # box reduction stops before the short side drops below this
# draft() picks scale 1/8 from this short side on; smaller JPEGs are decoded at 1/4 to 1/1.
_DRAFT_MIN_SIDE = 8 * _DRAFT_SIDE


def _reduced(image: Image.Image) -> Image.Image:
    """Greyscale, box-reduced by the largest integer factor that keeps the short side >= 256 px."""
    grey = image.convert("L")
    factor = min(grey.size) // _REDUCE_SIDE
    return grey.reduce(factor) if factor >= 2 else grey


def to_signed64(value: int) -> int:
    """Store an unsigned 64-bit hash in a signed int64 column (two's complement)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def from_signed64(value: int) -> int:
    """Inverse of :func:`to_signed64`."""
    return value + (1 << 64) if value < 0 else value
