"""Letterbox and pillarbox bars: found around a re-framed picture, never in a picture's own margins."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from pipeline.dedup.bars import unbarred_box
from pipeline.dedup.verify import picture_box
from pipeline.image import ImageOptions, process_image
from testkit.transforms import bundled_photos, letterbox

OPTIONS = ImageOptions()


def _stored(image: Image.Image, quality: int = 90) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """The stored picture as the dedup job decodes it, and where the picture lies in it."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    processed = process_image(buffer.getvalue(), OPTIONS)
    stored = Image.open(io.BytesIO(processed.data)).convert("RGB")
    return stored, picture_box(stored.size, (processed.original_width, processed.original_height), OPTIONS)


@pytest.mark.parametrize(
    ("name", "colour"), [("coffee", (0, 0, 0)), ("astronaut", (0, 0, 0)), ("rocket", (40, 90, 200))]
)
def test_bars_of_any_colour_are_cut_to_the_picture_inside(name: str, colour: tuple[int, int, int]) -> None:
    photo = bundled_photos()[name]
    stored, box = _stored(letterbox(photo, 0.3, colour))
    inside = unbarred_box(stored, box)
    assert inside is not None
    left, top, right, bottom = box
    # Bars on the short sides: the picture's width (or height) is kept, the other side cut to the
    # picture's share of it (1 / 1.3), within the few pixels JPEG blurs at the edge.
    if photo.width >= photo.height:
        assert (inside[0], inside[2]) == (left, right)
        assert abs((inside[3] - inside[1]) - (bottom - top) / 1.3) <= 4
    else:
        assert (inside[1], inside[3]) == (top, bottom)
        assert abs((inside[2] - inside[0]) - (right - left) / 1.3) <= 4
    # The picture inside is the photo: its pixels are not the bars' colour.
    crop = np.asarray(stored.crop(inside), dtype=np.int16)
    assert np.abs(crop[2] - colour).max() > 16 and np.abs(crop[-3] - colour).max() > 16


def test_a_picture_without_bars_has_none() -> None:
    for name, photo in bundled_photos().items():
        stored, box = _stored(photo)
        assert unbarred_box(stored, box) is None, name


def test_margins_all_round_are_the_picture_s_own_not_bars() -> None:
    # An icon on white: white above, below and beside it. Its copies keep those margins.
    icon = Image.new("RGB", (400, 300), (255, 255, 255))
    icon.paste((30, 136, 229), (150, 100, 250, 200))
    stored, box = _stored(icon)
    assert unbarred_box(stored, box) is None
    # A flat or near-uniform picture is all "bar": no picture would be left inside.
    stored, box = _stored(Image.new("RGB", (300, 200), (120, 130, 140)))
    assert unbarred_box(stored, box) is None


def test_bars_must_be_on_both_sides_and_of_one_colour() -> None:
    photo = bundled_photos()["chelsea"].convert("RGB")
    one_side = Image.new("RGB", (photo.width, photo.height + 90), (0, 0, 0))
    one_side.paste(photo, (0, 0))  # a band only below: a caption strip, not bars
    assert unbarred_box(*_stored(one_side)) is None
    two_colours = letterbox(photo, 0.3, (0, 0, 0))
    two_colours.paste((255, 255, 255), (0, 0, photo.width, 20))  # white above, black below
    assert unbarred_box(*_stored(two_colours)) is None


def test_thin_bars_and_jpeg_noise() -> None:
    photo = bundled_photos()["coffee"]
    # Bars under MIN_BAR (3% of the side) are left alone: too thin to matter to the thumbnail.
    assert unbarred_box(*_stored(letterbox(photo, 0.02))) is None
    # A heavily compressed copy still has its bars found.
    assert unbarred_box(*_stored(letterbox(photo, 0.3), quality=30)) is not None
