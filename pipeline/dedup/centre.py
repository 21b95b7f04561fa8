"""A second pHash, of the picture's centre: finds copies with a band, caption or watermark at an edge.

pHash keeps only the lowest frequencies of the whole picture, so a dark caption band over the
bottom 14% moves a copy of a synthetic scene 10-20 bits away (docs/benchmarks.md, "Dedup
quality"). The centre hash is
the same pHash computed on the central ``CENTRE_FRACTION`` of each side of the picture (after
removing the border padding of the ``border`` resize mode), where such overlays rarely reach. A
benchmark image and a corpus sample match when either hash is close enough.

Corpus samples do not carry a centre hash from the download job (it would add roughly 0.3 of
its ~4.5 CPU-ms per image): the dedup job computes it from the stored image, once per raw shard,
with the other per-image features it needs (:mod:`pipeline.dedup.features`).
"""

from __future__ import annotations

from PIL import Image

from pipeline.dedup.complexity import content
from pipeline.image.phash import phash

# Of each side. 0.6, 0.7 and 0.8 were compared once on the quality benchmark's images: 0.6 found
# as many captioned copies as 0.7 with fewer false pairs; 0.8 still sees part of a 14% band
# (0.88 / 0.51 of captioned photos / scenes found).
CENTRE_FRACTION = 0.6


def centre_region(image: Image.Image, border: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """The central ``CENTRE_FRACTION`` of each side of ``image`` without its border padding."""
    return centre_of(content(image, border))


def centre_of(picture: Image.Image) -> Image.Image:
    """The central ``CENTRE_FRACTION`` of each side of a picture already cut to its content."""
    width, height = picture.size
    dx, dy = width * (1 - CENTRE_FRACTION) / 2, height * (1 - CENTRE_FRACTION) / 2
    box = (
        round(dx),
        round(dy),
        max(round(dx) + 1, round(width - dx)),
        max(round(dy) + 1, round(height - dy)),
    )
    return picture.crop(box)


def centre_phash(image: Image.Image, border: tuple[int, int, int] = (255, 255, 255)) -> int:
    """Unsigned 64-bit pHash of :func:`centre_region`."""
    return phash(centre_region(image, border))
