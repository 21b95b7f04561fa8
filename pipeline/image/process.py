"""Bytes in, stored image and its hashes out: the pure core of the download stage."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from PIL import Image

from pipeline.image.decode import decode_rgb, open_checked
from pipeline.image.encode import encode
from pipeline.image.options import ImageOptions
from pipeline.image.phash import phash
from pipeline.image.resize import resize


@dataclass(frozen=True)
class ProcessedImage:
    """A stored image and what later stages need to know about it."""

    data: bytes
    width: int
    height: int
    original_width: int
    original_height: int
    sha256: str  # of the bytes as downloaded
    phash: int  # unsigned 64-bit pHash of the stored (resized) image


def stored_image(data: bytes, options: ImageOptions) -> tuple[Image.Image, tuple[int, int]]:
    """Check, decode and resize ``data`` as the download job does; return it and the original size.

    The image whose pHash the raw shards record: the dedup job hashes benchmark images through
    this same function so that both sides see identical pixels.
    """
    image = open_checked(data, options)
    rgb, original_size = decode_rgb(image, options)
    return resize(rgb, original_size, options), original_size


def process_image(data: bytes, options: ImageOptions) -> ProcessedImage:
    """Check, decode, resize and encode ``data``; raise ``SampleError`` with a reason if unusable."""
    stored, original_size = stored_image(data, options)
    return ProcessedImage(
        data=encode(stored, options),
        width=stored.width,
        height=stored.height,
        original_width=original_size[0],
        original_height=original_size[1],
        sha256=hashlib.sha256(data).hexdigest(),
        phash=phash(stored),
    )
