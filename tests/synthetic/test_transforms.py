"""Near-duplicate edits and the hard negatives of the dedup quality check."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image

from pipeline.image.phash import thumbnail
from pipeline.synthetic.scenes import random_scene, render
from testkit.transforms import (
    HARD,
    MILD,
    NEAR_UNIFORM_KINDS,
    TRANSFORMS,
    bundled_photos,
    centre_crop,
    near_uniform,
    photo_texture,
    plant,
    random_window,
)


@pytest.fixture(scope="module")
def scene() -> Image.Image:
    rng = random.Random(2)
    return render(random_scene(rng), (400, 300), rng)


def test_every_edit_is_mild_or_hard_and_plant_applies_them_all(scene: Image.Image) -> None:
    assert sorted(MILD + HARD) == sorted(TRANSFORMS)
    copies = plant(scene)
    assert list(copies) == list(TRANSFORMS)
    assert all(copy.mode == "RGB" for copy in copies.values())
    assert list(plant(scene, ("flip",))) == ["flip"]
    with pytest.raises(KeyError, match="rotate"):
        plant(scene, ("rotate",))


def test_edits_do_what_their_names_say(scene: Image.Image) -> None:
    original = np.asarray(scene, dtype=np.int16)
    copies = {name: np.asarray(image, dtype=np.int16) for name, image in plant(scene).items()}
    assert copies["resize_0.5"].shape == (150, 200, 3)
    assert copies["crop_5"].shape == (285, 380, 3)
    assert copies["crop_15"].shape == (255, 340, 3)
    assert np.array_equal(copies["flip"], original[:, ::-1])
    grey = copies["grayscale"]
    assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 1], grey[..., 2])
    assert copies["colour_shift"].mean() > original.mean()
    # The text band covers the bottom 14%; the rest of the picture is untouched.
    changed_rows = np.flatnonzero(np.abs(copies["text_overlay"] - original).max(axis=(1, 2)) > 0)
    assert changed_rows.min() >= 300 - 42 and changed_rows.max() == 299
    jpeg = copies["jpeg_q30"]
    assert jpeg.shape == original.shape and 0 < np.abs(jpeg - original).mean() < 10
    blurred = copies["blur_r2"]
    assert np.abs(np.diff(blurred, axis=1)).mean() < np.abs(np.diff(original, axis=1)).mean()


def test_centre_crop_cuts_half_on_each_side() -> None:
    image = Image.new("RGB", (200, 100))
    assert centre_crop(image, 0.1).size == (180, 90)


def test_near_uniform_images_are_near_uniform() -> None:
    rng = random.Random(4)
    for kind in NEAR_UNIFORM_KINDS:
        for _ in range(3):
            image = near_uniform(kind, rng, (320, 240))
            assert image.size == (320, 240) and image.mode == "RGB"
            # What pHash sees (the 32x32 greyscale thumbnail) is almost flat.
            assert np.asarray(thumbnail(image), dtype=np.float64).std() < 15
    solid = np.asarray(near_uniform("solid", rng, (50, 40)))
    assert len(np.unique(solid.reshape(-1, 3), axis=0)) == 1
    with pytest.raises(KeyError, match="stripes"):
        near_uniform("stripes", rng, (10, 10))


def test_photo_textures_are_structured_and_seeded() -> None:
    first = photo_texture(random.Random(7), (300, 200))
    again = photo_texture(random.Random(7), (300, 200))
    other = photo_texture(random.Random(8), (300, 200))
    assert first.size == (300, 200)
    assert np.array_equal(np.asarray(first), np.asarray(again))
    assert not np.array_equal(np.asarray(first), np.asarray(other))
    assert np.asarray(thumbnail(first), dtype=np.float64).std() > 10


def test_random_window_stays_inside_the_image() -> None:
    rng = random.Random(1)
    image = Image.new("RGB", (500, 300))
    for _ in range(50):
        window = random_window(image, rng, 0.25, 0.5)
        assert 125 <= window.width <= 250 and 75 <= window.height <= 150


def test_bundled_photos_are_offline_rgb_and_distinct() -> None:
    photos = bundled_photos()
    assert len(photos) >= 20
    assert {"astronaut", "camera", "coffee", "chelsea", "rocket"} <= set(photos)
    assert "cat" not in photos  # the same picture as chelsea
    assert all(image.mode == "RGB" and min(image.size) >= 100 for image in photos.values())
