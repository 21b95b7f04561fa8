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


def test_exact_mode_is_bit_identical_to_imagehash_on_photos() -> None:
    import io

    from pipeline.image.phash import phash_bytes

    photos = _photos()
    assert len(photos) >= 20
    for data in photos:
        assert phash_bytes(data, exact=True) == int(str(imagehash.phash(Image.open(io.BytesIO(data)))), 16)


def test_fast_mode_stays_within_two_bits_of_imagehash_on_average() -> None:
    import io

    from pipeline.image.phash import phash_bytes

    distances = [
        bin(phash_bytes(data) ^ int(str(imagehash.phash(Image.open(io.BytesIO(data)))), 16)).count("1")
        for data in _photos()
    ]
    assert sum(distances) / len(distances) <= 2.0
    assert max(distances) <= 10


def _photos_as(fmt: str, scale: float = 1.0) -> list[bytes]:
    """The sample photographs re-encoded as ``fmt``, optionally enlarged."""
    import io

    out = []
    for data in _photos():
        image = Image.open(io.BytesIO(data))
        if scale != 1.0:
            image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BICUBIC)
        buffer = io.BytesIO()
        image.save(buffer, fmt)
        out.append(buffer.getvalue())
    return out


@pytest.mark.parametrize(("fmt", "scale"), [("PNG", 1.0), ("JPEG", 2.5), ("WEBP", 2.0)])
def test_fast_mode_on_reduced_decodes_stays_within_two_bits(fmt: str, scale: float) -> None:
    """Box-reduced (PNG, WebP) and 1/8-scale (large JPEG) decodes still hash like imagehash."""
    import io

    from pipeline.image.phash import phash_bytes

    distances = []
    for data in _photos_as(fmt, scale):
        theirs = int(str(imagehash.phash(Image.open(io.BytesIO(data)))), 16)
        assert phash_bytes(data, exact=True) == theirs
        distances.append(bin(phash_bytes(data) ^ theirs).count("1"))
    assert sum(distances) / len(distances) <= 2.0
    assert max(distances) <= 12  # the chessboard pattern aliases differently at 1/8 scale
