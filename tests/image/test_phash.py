"""Our pHash equals imagehash.phash bit for bit."""

import random

import imagehash
import numpy as np
import pytest
from PIL import Image

from pipeline.image.phash import from_signed64, phash, to_signed64
from pipeline.synthetic.scenes import random_scene, render


def _images() -> list[Image.Image]:
    rng = random.Random(5)
    images = [render(random_scene(rng), (rng.randint(64, 700), rng.randint(64, 700)), rng) for _ in range(25)]
    noise = np.random.default_rng(0)
    images += [
        Image.fromarray(noise.integers(0, 255, (h, w, 3), dtype=np.uint8)) for h, w in ((50, 60), (300, 200))
    ]
    images.append(Image.new("RGB", (40, 40), (10, 200, 30)))
    return images


@pytest.mark.parametrize("index", range(28))
def test_matches_imagehash(index: int) -> None:
    image = _images()[index]
    theirs = int(str(imagehash.phash(image)), 16)
    assert phash(image) == theirs


def test_signed_storage_round_trips() -> None:
    for value in (0, 1, (1 << 63) - 1, 1 << 63, (1 << 64) - 1):
        stored = to_signed64(value)
        assert -(1 << 63) <= stored < 1 << 63
        assert from_signed64(stored) == value
