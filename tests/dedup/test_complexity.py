"""content(): the picture without the border padding, exactly as its docstring defines it."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipeline.dedup.complexity import BORDER_TOLERANCE, content


def reference(image: Image.Image, border: tuple[int, int, int]) -> Image.Image:
    """The definition, in numpy: cut edge rows and columns whose pixels all lie within the tolerance."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.int16)
    off = np.abs(rgb - np.array(border, dtype=np.int16)).max(axis=2) > BORDER_TOLERANCE
    rows, cols = np.flatnonzero(off.any(axis=1)), np.flatnonzero(off.any(axis=0))
    if len(rows) == 0:
        return image
    return image.crop((int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1))


def cases() -> list[Image.Image]:
    rng = np.random.default_rng(7)
    images = [Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)) for _ in range(20)]
    for _ in range(30):  # one off-border pixel somewhere on a white or black canvas
        canvas = np.full((30, 50, 3), rng.choice([0, 255]), dtype=np.uint8)
        canvas[rng.integers(0, 30), rng.integers(0, 50)] = rng.integers(0, 256, 3)
        images.append(Image.fromarray(canvas))
    picture = Image.fromarray(rng.integers(0, 256, (20, 64, 3), dtype=np.uint8))
    padded = Image.new("RGB", (64, 64), (255, 255, 255))
    padded.paste(picture, (0, 22))
    images.append(padded)
    edge = 255 - BORDER_TOLERANCE  # exactly at the tolerance: still border; one below: picture
    images += [Image.new("RGB", (9, 7), (c, 255, 255)) for c in (edge, edge - 1, 0, 255)]
    images += [Image.new("L", (12, 8), 128), Image.new("RGBA", (12, 8), (1, 2, 3, 0))]
    return images


@pytest.mark.parametrize("border", [(255, 255, 255), (0, 0, 0), (250, 5, 128)])
def test_content_matches_its_definition(border: tuple[int, int, int]) -> None:
    for image in cases():
        got, want = content(image, border), reference(image, border)
        assert got.size == want.size and got.mode == want.mode
        assert np.array_equal(np.asarray(got), np.asarray(want))


def test_content_cuts_the_border_padding_only() -> None:
    picture = Image.new("RGB", (64, 20), (10, 120, 30))
    padded = Image.new("RGB", (64, 64), (255, 255, 255))
    padded.paste(picture, (0, 22))
    assert content(padded).size == (64, 20)
