"""The C core of phash() (``pipeline.image._phash``): Pillow's thumbnail and the numpy path's bits."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image, ImageFilter

import pipeline.image.phash as phash_module
from pipeline.image import _phash  # built by `make venv` (pip install -e .); must not be missing here
from pipeline.image.phash import phash
from pipeline.synthetic.scenes import random_scene, render


def _picture(width: int, height: int, seed: int = 0, grain: float = 12.0) -> Image.Image:
    """A scene with photo-like grain."""
    rng = random.Random(seed)
    image = render(random_scene(rng), (width, height), rng).filter(ImageFilter.GaussianBlur(1))
    noise = np.random.default_rng(seed).normal(0, grain, (height, width, 3))
    return Image.fromarray(np.clip(np.asarray(image, dtype=np.float64) + noise, 0, 255).astype(np.uint8))


def test_thumbnail_equals_pillows_lanczos_resize_in_either_pass_order() -> None:
    rng = np.random.default_rng(7)
    sizes = [(int(w), int(h)) for w, h in rng.integers(33, 700, (60, 2))]
    sizes += [(100, 168), (100, 169), (64, 1000), (1000, 64)]  # Pillow's pass-order boundary
    for width, height in sizes:
        pixels = rng.integers(0, 256, (height, width), dtype=np.uint8)
        theirs = np.asarray(Image.fromarray(pixels).resize((32, 32), Image.Resampling.LANCZOS))
        ours = np.frombuffer(_phash.thumbnail(pixels.tobytes(), width, height), np.uint8).reshape(32, 32)
        np.testing.assert_array_equal(ours, theirs, err_msg=f"{width}x{height}")


def test_phash_of_pictures_equals_the_numpy_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """phash() (what the download job stores) gives the same bits through the C thumbnail and DCT."""
    rng = random.Random(11)
    pictures = [_picture(rng.randint(20, 600), rng.randint(20, 600), seed=i) for i in range(40)]
    pictures += [Image.new("RGB", (256, 256), (10, 200, 30)), Image.new("L", (100, 80), 7)]
    pictures += [_picture(256, 170).convert("RGBA"), _picture(33, 300), _picture(32, 300)]
    ours = [phash(picture) for picture in pictures]
    with monkeypatch.context() as patch:
        patch.setattr(phash_module, "_phash", None)
        assert ours == [phash(picture) for picture in pictures]


def test_threads_hash_in_parallel_without_interfering() -> None:
    """The thumbnail and DCT run without the GIL; threads must not share state."""
    pictures = [_picture(300 + 40 * i, 260, seed=i) for i in range(8)]
    expected = [phash(p) for p in pictures]
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(phash, pictures * 4)) == expected * 4


def test_phash_grey_leaves_small_pictures_to_python() -> None:
    assert _phash.phash_grey(bytes(32 * 300), 32, 300) is None
    assert isinstance(_phash.phash_grey(bytes(33 * 33), 33, 33), int)
    with pytest.raises(ValueError, match="width \\* height"):
        _phash.phash_grey(bytes(10), 4, 4)
