"""Decoding, normalising, resizing and encoding downloaded bytes."""

from __future__ import annotations

import hashlib
import io
import random

import numpy as np
import pytest
from PIL import Image

from pipeline.errors import ErrorClass, SampleError
from pipeline.image import EncodeFormat, ImageOptions, ResizeMode, process_image
from pipeline.synthetic.scenes import random_scene, render
from pipeline.synthetic.server import png_bomb


def encode(image: Image.Image, fmt: str = "JPEG", **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def scene_jpeg(size: tuple[int, int], seed: int = 0) -> bytes:
    rng = random.Random(seed)
    return encode(render(random_scene(rng), size, rng), quality=92)


def decoded(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


@pytest.mark.parametrize(
    ("mode", "size", "expected"),
    [
        (ResizeMode.BORDER, (800, 400), (256, 256)),
        (ResizeMode.KEEP_RATIO, (800, 400), (512, 256)),
        (ResizeMode.CENTER_CROP, (800, 400), (256, 256)),
        (ResizeMode.NO, (800, 400), (800, 400)),
        (ResizeMode.BORDER, (100, 50), (256, 256)),
    ],
)
def test_resize_modes(mode: ResizeMode, size: tuple[int, int], expected: tuple[int, int]) -> None:
    result = process_image(scene_jpeg(size), ImageOptions(resize_mode=mode))
    assert (result.width, result.height) == expected == decoded(result.data).size
    assert (result.original_width, result.original_height) == size


def test_border_pads_with_the_border_colour() -> None:
    red = encode(Image.new("RGB", (400, 200), (255, 0, 0)), quality=95)
    result = decoded(process_image(red, ImageOptions()).data).convert("RGB")
    assert result.getpixel((128, 5))[1] > 240  # white band above
    r, g, b = result.getpixel((128, 128))
    assert r > 240 and g < 20 and b < 20


def test_resize_only_if_bigger_keeps_small_images() -> None:
    result = process_image(
        scene_jpeg((120, 100)), ImageOptions(resize_mode=ResizeMode.KEEP_RATIO, resize_only_if_bigger=True)
    )
    assert (result.width, result.height) == (120, 100)


def test_reduced_decode_gives_the_same_picture() -> None:
    data = scene_jpeg((2000, 1500), seed=3)
    fast = decoded(process_image(data, ImageOptions()).data).convert("L")
    full = decoded(process_image(data, ImageOptions(reduced_decode=False)).data).convert("L")
    assert fast.size == full.size == (256, 256)
    difference = np.abs(np.asarray(fast, dtype=float) - np.asarray(full, dtype=float)).mean()
    assert difference < 4.0


def test_exif_orientation_is_applied() -> None:
    image = Image.new("RGB", (300, 100), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    data = encode(image, exif=exif.tobytes(), quality=95)
    result = process_image(data, ImageOptions(resize_mode=ResizeMode.NO))
    assert (result.width, result.height) == (100, 300)
    assert (result.original_width, result.original_height) == (100, 300)
    keep = process_image(data, ImageOptions(resize_mode=ResizeMode.KEEP_RATIO, image_size=50))
    assert (keep.width, keep.height) == (50, 150)


def _colour_at_centre(data: bytes) -> tuple[int, int, int]:
    return (
        decoded(process_image(data, ImageOptions(resize_mode=ResizeMode.NO)).data)
        .convert("RGB")
        .getpixel((5, 5))
    )


def test_alpha_is_composited_on_white() -> None:
    transparent = Image.new("RGBA", (10, 10), (255, 0, 0, 0))
    assert min(_colour_at_centre(encode(transparent, "PNG"))) > 240
    half = Image.new("LA", (10, 10), (0, 128))
    assert 120 < _colour_at_centre(encode(half, "PNG"))[0] < 135


def test_palette_with_transparency_and_cmyk_and_grey() -> None:
    palette = Image.new("P", (10, 10), 0)
    palette.putpalette([0, 0, 0] * 256)
    palette.info["transparency"] = 0
    assert min(_colour_at_centre(encode(palette, "PNG", transparency=0))) > 240
    cmyk = Image.new("CMYK", (10, 10), (0, 255, 255, 0))  # red
    r, g, b = _colour_at_centre(encode(cmyk, "JPEG", quality=95))
    assert r > 200 and g < 60 and b < 60
    grey = Image.new("L", (10, 10), 77)
    assert all(abs(c - 77) < 4 for c in _colour_at_centre(encode(grey, "PNG")))


def test_sixteen_bit_greyscale_is_scaled_not_clipped() -> None:
    pixels = np.full((10, 10), 32768, dtype=np.uint16)  # mid grey in 16 bits
    data = encode(Image.fromarray(pixels), "PNG")
    assert all(abs(c - 128) < 4 for c in _colour_at_centre(data))


def test_animated_gif_takes_the_first_frame() -> None:
    frames = [Image.new("RGB", (20, 20), c) for c in ((0, 200, 0), (200, 0, 0))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100)
    r, g, _ = _colour_at_centre(buffer.getvalue())
    assert g > 150 and r < 60


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", ErrorClass.UNDECODABLE),
        (b"<!DOCTYPE html><html>nope</html>", ErrorClass.UNDECODABLE),
        (b'<svg xmlns="http://www.w3.org/2000/svg"/>', ErrorClass.UNDECODABLE),
        (b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4, ErrorClass.UNDECODABLE),
        (png_bomb(60000, 60000), ErrorClass.IMAGE_TOO_LARGE),
    ],
)
def test_bad_bytes_are_rejected_with_a_reason(data: bytes, error: ErrorClass) -> None:
    with pytest.raises(SampleError) as info:
        process_image(data, ImageOptions())
    assert info.value.error_class is error


def test_truncated_jpeg_is_undecodable() -> None:
    data = scene_jpeg((400, 300))
    with pytest.raises(SampleError) as info:
        process_image(data[: len(data) // 2], ImageOptions())
    assert info.value.error_class is ErrorClass.UNDECODABLE


def test_size_and_aspect_filters() -> None:
    data = scene_jpeg((300, 100))
    with pytest.raises(SampleError) as info:
        process_image(data, ImageOptions(min_image_size=150))
    assert info.value.error_class is ErrorClass.IMAGE_TOO_SMALL
    with pytest.raises(SampleError) as info:
        process_image(data, ImageOptions(max_aspect_ratio=2.0))
    assert info.value.error_class is ErrorClass.ASPECT_RATIO
    with pytest.raises(SampleError) as info:
        process_image(data, ImageOptions(max_pixels=10_000))
    assert info.value.error_class is ErrorClass.IMAGE_TOO_LARGE


def test_webp_encoding_and_quality() -> None:
    data = scene_jpeg((640, 480))
    webp = process_image(data, ImageOptions(encode_format=EncodeFormat.WEBP))
    assert decoded(webp.data).format == "WEBP"
    low = process_image(data, ImageOptions(encode_quality=20))
    high = process_image(data, ImageOptions(encode_quality=95))
    assert decoded(low.data).format == "JPEG" and len(low.data) < len(high.data)


def test_hashes_describe_original_bytes_and_stored_image() -> None:
    data = scene_jpeg((500, 400), seed=9)
    result = process_image(data, ImageOptions())
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert 0 <= result.phash < 1 << 64


def test_phash_survives_resize_and_recompression_but_separates_scenes() -> None:
    same, different = [], []
    for seed in range(12):
        data = scene_jpeg((500, 400), seed=seed)
        original = process_image(data, ImageOptions()).phash
        smaller = process_image(encode(decoded(data).resize((250, 200)), quality=60), ImageOptions()).phash
        other = process_image(scene_jpeg((500, 400), seed=seed + 100), ImageOptions()).phash
        same.append(bin(original ^ smaller).count("1"))
        different.append(bin(original ^ other).count("1"))
    assert sum(same) / len(same) <= 4
    assert sum(different) / len(different) >= 20
