"""img2dataset's image settings: keep_ratio_largest, PNG, the upscale filter, their records."""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
from PIL import Image

from pipeline.cli_options import recorded
from pipeline.errors import UserInputError
from pipeline.image import EncodeFormat, ImageOptions, ResampleFilter, ResizeMode, process_image
from pipeline.image.options import image_options_from_record, image_record, resample_filter
from pipeline.synthetic.scenes import random_scene, render


def _jpeg(size: tuple[int, int], seed: int = 0) -> bytes:
    rng = random.Random(seed)
    buffer = io.BytesIO()
    render(random_scene(rng), size, rng).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("size", "expected"), [((800, 400), (256, 128)), ((300, 600), (128, 256)), ((100, 50), (256, 128))]
)
def test_keep_ratio_largest_scales_the_longer_side_without_padding(
    size: tuple[int, int], expected: tuple[int, int]
) -> None:
    result = process_image(_jpeg(size), ImageOptions(resize_mode=ResizeMode.KEEP_RATIO_LARGEST))
    assert (result.width, result.height) == expected == Image.open(io.BytesIO(result.data)).size


def test_keep_ratio_largest_only_if_bigger_keeps_small_images() -> None:
    options = ImageOptions(resize_mode=ResizeMode.KEEP_RATIO_LARGEST, resize_only_if_bigger=True)
    assert (
        process_image(_jpeg((120, 80)), options).width,
        process_image(_jpeg((120, 80)), options).height,
    ) == (
        120,
        80,
    )


def test_png_is_lossless_with_a_compression_level() -> None:
    source = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    options = ImageOptions(resize_mode=ResizeMode.NO, encode_format=EncodeFormat.PNG)
    assert options.encode_quality == 6 and options.extension == "png"
    stored = Image.open(io.BytesIO(process_image(_png(source), options).data))
    assert stored.format == "PNG"
    assert np.array_equal(np.asarray(stored.convert("RGB")), np.asarray(source))
    fast = process_image(
        _png(source), ImageOptions(resize_mode=ResizeMode.NO, encode_format="png", encode_quality=0)
    )
    assert len(fast.data) > 64 * 64 * 3  # level 0: stored, not compressed


def test_encode_quality_default_and_range_follow_the_format() -> None:
    assert ImageOptions().encode_quality == 95
    assert ImageOptions(encode_format=EncodeFormat.WEBP).encode_quality == 95
    with pytest.raises(UserInputError, match="PNG compression level 0..9"):
        ImageOptions(encode_format=EncodeFormat.PNG, encode_quality=95)
    with pytest.raises(UserInputError, match="1..100"):
        ImageOptions(encode_quality=0)


def test_upscale_filter_is_used_when_enlarging() -> None:
    # Four flat colours: nearest keeps exactly those, lanczos mixes them at the edges.
    pixels = np.zeros((2, 2, 3), dtype=np.uint8)
    pixels[0, 0], pixels[0, 1], pixels[1, 0], pixels[1, 1] = (
        (255, 0, 0),
        (0, 255, 0),
        (0, 0, 255),
        (255, 255, 0),
    )
    data = _png(Image.fromarray(pixels))

    def colours(name: str) -> int:
        options = ImageOptions(
            image_size=16, resize_mode=ResizeMode.KEEP_RATIO, encode_format="png", upscale_filter=name
        )
        stored = Image.open(io.BytesIO(process_image(data, options).data)).convert("RGB")
        return len({tuple(p) for p in np.asarray(stored).reshape(-1, 3)})

    assert colours("nearest") == 4
    assert colours("lanczos") > 4


def test_filter_names_include_img2dataset_spellings() -> None:
    assert resample_filter("cubic") is ResampleFilter.BICUBIC
    assert resample_filter("LINEAR") is ResampleFilter.BILINEAR
    assert resample_filter("lanczos4") is ResampleFilter.LANCZOS
    with pytest.raises(ValueError, match="expected one of"):
        resample_filter("mitchell")


def test_record_of_the_defaults_is_what_earlier_versions_wrote() -> None:
    # raw/_options.json and the raw shards' fingerprints of existing datasets hold exactly this:
    # new options at their old behaviour stay out of it, so those downloads still resume.
    assert image_record(ImageOptions()) == {
        "image_size": 256,
        "resize_mode": "border",
        "resize_only_if_bigger": False,
        "downscale_filter": "area",
        "border_color": [255, 255, 255],
        "encode_format": "jpg",
        "encode_quality": 95,
        "min_image_size": 0,
        "max_aspect_ratio": float("inf"),
        "max_pixels": 89_478_485,
        "reduced_decode": True,
    }
    changed = ImageOptions(upscale_filter=ResampleFilter.LANCZOS, encode_format=EncodeFormat.PNG)
    assert image_record(changed)["upscale_filter"] == "lanczos"
    assert image_options_from_record(image_record(changed)) == changed
    assert image_options_from_record(recorded(ImageOptions())) == ImageOptions()
