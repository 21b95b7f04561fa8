"""The C DC decoder gives libjpeg-turbo's 1/8-scale pixels, and phash_bytes the same hashes with it."""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFilter

import pipeline.image.phash as phash_module
from pipeline.image import _jpegdc  # built by `make venv` (pip install -e .); must not be missing here
from pipeline.image.phash import phash_bytes
from pipeline.synthetic.scenes import random_scene, render


def _picture(width: int, height: int, seed: int = 0, grain: float = 12.0) -> Image.Image:
    """A scene with photo-like grain, so that blocks carry many AC coefficients."""
    rng = random.Random(seed)
    image = render(random_scene(rng), (width, height), rng).filter(ImageFilter.GaussianBlur(1))
    noise = np.random.default_rng(seed).normal(0, grain, (height, width, 3))
    return Image.fromarray(np.clip(np.asarray(image, dtype=np.float64) + noise, 0, 255).astype(np.uint8))


def _jpeg(image: Image.Image, **save: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **save)
    return buffer.getvalue()


def _pillow_eighth(data: bytes) -> np.ndarray:
    """What libjpeg-turbo decodes at scale 1/8 in greyscale (Pillow's draft)."""
    with Image.open(io.BytesIO(data)) as image:
        image.draft("L", (max(1, image.width // 8), max(1, image.height // 8)))
        image.load()
        assert image.mode == "L"
        return np.asarray(image)


def _ours(data: bytes) -> np.ndarray | None:
    result = _jpegdc.luma_dc(data)
    if result is None:
        return None
    width, height, pixels = result
    return np.frombuffer(pixels, np.uint8).reshape(height, width)


VARIANTS = {
    "4:2:0 q75": dict(quality=75, subsampling=2),
    "4:2:2 q90": dict(quality=90, subsampling=1),
    "4:4:4 q95": dict(quality=95, subsampling=0),
    "q100": dict(quality=100),
    "q5": dict(quality=5),
    "optimised Huffman tables": dict(quality=85, optimize=True),
    "restart every 3 blocks": dict(quality=85, restart_marker_blocks=3),
    "restart every row": dict(quality=85, restart_marker_rows=1),
    "16-bit quantisation tables": dict(qtables=[[300] * 64, [400] * 64]),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("size", [(640, 480), (517, 731), (9, 13), (8, 8)])
def test_pixels_equal_libjpeg_turbo_eighth_scale(variant: str, size: tuple[int, int]) -> None:
    data = _jpeg(_picture(*size, seed=size[0]), **VARIANTS[variant])
    ours = _ours(data)
    assert ours is not None
    np.testing.assert_array_equal(ours, _pillow_eighth(data))


def test_thumbnail_equals_pillows_lanczos_resize_in_either_pass_order() -> None:
    rng = np.random.default_rng(7)
    sizes = [(int(w), int(h)) for w, h in rng.integers(33, 700, (60, 2))]
    sizes += [(100, 168), (100, 169), (64, 1000), (1000, 64)]  # Pillow's pass-order boundary
    for width, height in sizes:
        pixels = rng.integers(0, 256, (height, width), dtype=np.uint8)
        theirs = np.asarray(Image.fromarray(pixels).resize((32, 32), Image.Resampling.LANCZOS))
        ours = np.frombuffer(_jpegdc.thumbnail(pixels.tobytes(), width, height), np.uint8).reshape(32, 32)
        np.testing.assert_array_equal(ours, theirs, err_msg=f"{width}x{height}")


@pytest.mark.parametrize("size", [(600, 520), (33, 17)])
def test_greyscale_files_equal_libjpeg_turbo(size: tuple[int, int]) -> None:
    data = _jpeg(_picture(*size).convert("L"), quality=88)
    np.testing.assert_array_equal(_ours(data), _pillow_eighth(data))


def test_extreme_dc_values_are_range_limited_like_libjpeg() -> None:
    """Saturated colours with coarse quantisation push DC values past 0..255 before limiting."""
    array = np.zeros((256, 256, 3), np.uint8)
    array[::16, :] = 255
    array[:, ::7] = (255, 0, 255)
    data = _jpeg(Image.fromarray(array), qtables=[[1] * 64, [255] * 64], subsampling=0)
    np.testing.assert_array_equal(_ours(data), _pillow_eighth(data))


@pytest.mark.parametrize(
    "case",
    ["progressive", "cmyk", "rgb colour space", "truncated", "no end marker", "png", "empty", "junk"],
)
def test_files_it_does_not_handle_are_left_to_pillow(case: str) -> None:
    picture = _picture(96, 64)
    data = {
        "progressive": lambda: _jpeg(picture, progressive=True),
        "cmyk": lambda: _jpeg(picture.convert("CMYK")),
        "rgb colour space": lambda: _jpeg(picture, keep_rgb=True),
        "truncated": lambda: _jpeg(picture)[:-400],
        "no end marker": lambda: _jpeg(picture)[:-2],
        "png": lambda: _png(picture),
        "empty": lambda: b"",
        "junk": lambda: b"\xff\xd8\xff" + bytes(range(256)) * 4,
    }[case]()
    assert _jpegdc.luma_dc(data) is None


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_out_of_order_restart_markers_are_left_to_pillow() -> None:
    data = bytearray(_jpeg(_picture(128, 64), restart_marker_blocks=2))
    first = data.index(b"\xff\xd0", data.index(b"\xff\xda"))
    data[first + 1] = 0xD3
    assert _jpegdc.luma_dc(bytes(data)) is None


def _pillow_path_hash(data: bytes, monkeypatch: pytest.MonkeyPatch) -> int:
    with monkeypatch.context() as patch:
        patch.setattr(phash_module, "_jpegdc", None)
        return phash_bytes(data)


@pytest.mark.parametrize(
    ("size", "save"),
    [
        ((1200, 900), dict(quality=85)),
        ((900, 1600), dict(quality=92, subsampling=0)),
        ((2048, 600), dict(quality=70, optimize=True)),
        ((512, 512), dict(quality=80, restart_marker_rows=2)),
        ((640, 4100), dict(quality=60)),  # 1/8-scale short side 80: one Lanczos pass is long
        ((511, 800), dict(quality=80)),  # below 512 px: draft() decodes at 1/4, Pillow path
    ],
)
def test_phash_bytes_hashes_equal_the_pillow_path(
    size: tuple[int, int], save: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _jpeg(_picture(*size, seed=size[1]), **save)
    assert phash_bytes(data) == _pillow_path_hash(data, monkeypatch)


def test_phash_bytes_uses_the_extension_for_large_baseline_jpegs(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _jpeg(_picture(800, 600))
    calls = []
    real = _jpegdc.phash_dc

    def counting(*args: object) -> int | None:
        result = real(*args)
        calls.append(result)
        return result

    monkeypatch.setattr(_jpegdc, "phash_dc", counting)
    phash_bytes(data)
    phash_bytes(_jpeg(_picture(800, 600), progressive=True))
    assert calls[0] is not None and calls[1] is None  # the progressive one fell back to Pillow


def test_pixel_limit_sends_big_files_to_pillow(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _jpeg(_picture(700, 600))
    assert _jpegdc.phash_dc(data, 512, 512, 700 * 600) is not None
    assert _jpegdc.phash_dc(data, 512, 512, 700 * 600 - 1) is None
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(Image.DecompressionBombError):  # Pillow's own check still applies
        phash_bytes(data)


_SEED_FILES = [
    _jpeg(_picture(48, 40, seed=3), quality=90),
    _jpeg(_picture(40, 32, seed=4), quality=70, restart_marker_blocks=2),
    _jpeg(_picture(24, 40, seed=5).convert("L"), quality=95, optimize=True),
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    which=st.integers(0, len(_SEED_FILES) - 1),
    edits=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=6),
    cut=st.floats(0.3, 1.0),
)
def test_corrupt_files_never_crash_and_never_disagree_with_libjpeg(
    which: int, edits: list[tuple[float, int]], cut: float
) -> None:
    data = bytearray(_SEED_FILES[which])
    for where, value in edits:
        data[int(where * (len(data) - 1))] = value
    data = bytes(data[: max(4, int(len(data) * cut))]) if cut < 0.999 else bytes(data)
    ours = _ours(data)
    if ours is None:
        return
    try:
        theirs = _pillow_eighth(data)
    except (OSError, SyntaxError, ValueError):
        return  # Pillow refuses what we decoded: phash_bytes would have returned our hash
    np.testing.assert_array_equal(ours, theirs)


def test_threads_hash_in_parallel_without_interfering() -> None:
    """The decoder runs without the GIL on per-thread buffers; threads come and go."""
    from concurrent.futures import ThreadPoolExecutor

    files = [_jpeg(_picture(520 + 40 * i, 600, seed=i), quality=80 + i) for i in range(8)]
    expected = [phash_bytes(data) for data in files]
    for _ in range(3):  # new threads each time: their buffers are freed when they end
        with ThreadPoolExecutor(4) as pool:
            assert list(pool.map(phash_bytes, files * 4)) == expected * 4


def test_phash_of_pictures_equals_the_numpy_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """phash() (what the download job stores) gives the same bits through the C thumbnail and DCT."""
    from pipeline.image.phash import phash

    rng = random.Random(11)
    pictures = [_picture(rng.randint(20, 600), rng.randint(20, 600), seed=i) for i in range(40)]
    pictures += [Image.new("RGB", (256, 256), (10, 200, 30)), Image.new("L", (100, 80), 7)]
    pictures += [_picture(256, 170).convert("RGBA"), _picture(33, 300), _picture(32, 300)]
    ours = [phash(picture) for picture in pictures]
    with monkeypatch.context() as patch:
        patch.setattr(phash_module, "_jpegdc", None)
        assert ours == [phash(picture) for picture in pictures]


def test_phash_grey_leaves_small_pictures_to_python() -> None:
    assert _jpegdc.phash_grey(bytes(32 * 300), 32, 300) is None
    assert isinstance(_jpegdc.phash_grey(bytes(33 * 33), 33, 33), int)
    with pytest.raises(ValueError, match="width \\* height"):
        _jpegdc.phash_grey(bytes(10), 4, 4)
