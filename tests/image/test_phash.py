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


def _photos() -> list[bytes]:
    """scikit-image's bundled sample photographs, as JPEG files."""
    import io
    from pathlib import Path

    import skimage

    folder = Path(skimage.__file__).parent / "data"
    out = []
    for path in sorted([*folder.glob("*.png"), *folder.glob("*.jpg")]):
        buffer = io.BytesIO()
        Image.open(path).convert("RGB").save(buffer, "JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def _decoded(data: bytes) -> Image.Image:
    import io

    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.copy()


def test_exact_mode_is_bit_identical_to_imagehash_on_photos() -> None:
    photos = _photos()
    assert len(photos) >= 20
    for data in photos:
        picture = _decoded(data)
        assert phash(picture, exact=True) == int(str(imagehash.phash(picture)), 16)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_fast_mode_stays_within_two_bits_of_imagehash_on_average(fmt: str) -> None:
    import io

    distances = []
    for data in _photos():
        buffer = io.BytesIO()
        _decoded(data).save(buffer, fmt)
        picture = _decoded(buffer.getvalue())
        distances.append(bin(phash(picture) ^ int(str(imagehash.phash(picture)), 16)).count("1"))
    assert sum(distances) / len(distances) <= 2.0
    assert max(distances) <= 10
