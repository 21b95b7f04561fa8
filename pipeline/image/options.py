"""Options for turning downloaded bytes into a stored image."""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

from pipeline.cli_options import option
from pipeline.errors import UserInputError


class ResizeMode(StrEnum):
    """Resize modes, with img2dataset's meanings."""

    NO = "no"  # keep the decoded size
    BORDER = "border"  # fit inside size x size, pad to a square with the border colour
    KEEP_RATIO = "keep_ratio"  # scale so the shorter side is `size`, keep aspect ratio
    CENTER_CROP = "center_crop"  # scale shorter side to `size`, crop the centre square


class DownscaleFilter(StrEnum):
    """Filter used when shrinking; ``area`` averages pixels like img2dataset's default (cv2 INTER_AREA)."""

    AREA = "area"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    LANCZOS = "lanczos"


class EncodeFormat(StrEnum):
    JPEG = "jpg"
    WEBP = "webp"


@dataclass(frozen=True)
class ImageOptions:
    """How a downloaded image is checked, resized and re-encoded."""

    image_size: int = option(256, help="target size in pixels (see --resize-mode)")
    resize_mode: ResizeMode = option(
        ResizeMode.BORDER,
        choices=[m.value for m in ResizeMode],
        help="no: keep size; border: fit and pad to a square; keep_ratio: shorter side = size; "
        "center_crop: shorter side = size, crop the centre square",
    )
    resize_only_if_bigger: bool = option(False, help="never upscale small images")
    downscale_filter: DownscaleFilter = option(
        DownscaleFilter.AREA,
        choices=[f.value for f in DownscaleFilter],
        help="filter for shrinking (area: pixel averaging, as img2dataset); upscaling is bicubic",
    )
    border_color: tuple[int, int, int] = (255, 255, 255)
    encode_format: EncodeFormat = option(
        EncodeFormat.JPEG, choices=[f.value for f in EncodeFormat], help="format of stored images"
    )
    encode_quality: int = option(95, help="JPEG/WebP quality, 1..100")
    # Filters on the original image, applied before any resizing.
    min_image_size: int = option(0, help="minimum shorter side of the original")
    max_aspect_ratio: float = option(
        float("inf"), help="refuse originals whose long/short side ratio is larger"
    )
    # Decompression-bomb guard: refuse images whose header claims more pixels than this
    # (Pillow's own default warning threshold).
    max_pixels: int = option(89_478_485, help="decompression-bomb guard on the header's width x height")
    # Decode JPEGs at a reduced scale (DCT scaling) when the target is much smaller.
    reduced_decode: bool = option(True, negate="--no-reduced-decode", help="always decode JPEGs at full size")

    def __post_init__(self) -> None:
        if self.image_size < 1:
            raise UserInputError(f"--image-size must be >= 1, got {self.image_size}")
        if not 1 <= self.encode_quality <= 100:
            raise UserInputError(f"--encode-quality must be in 1..100, got {self.encode_quality}")
        if self.max_aspect_ratio < 1:
            raise UserInputError(f"--max-aspect-ratio must be >= 1, got {self.max_aspect_ratio}")
        if self.max_pixels < 1:
            raise UserInputError(f"--max-pixels must be >= 1, got {self.max_pixels}")
        if self.min_image_size < 0:
            raise UserInputError(f"--min-image-size must be >= 0, got {self.min_image_size}")

    @property
    def extension(self) -> str:
        """File extension of stored images (also the WebDataset field name)."""
        return self.encode_format.value


def image_options_from_record(record: dict[str, Any]) -> ImageOptions:
    """Rebuild :class:`ImageOptions` from its JSON record (``raw/_options.json``'s ``image``)."""
    known = {f.name for f in fields(ImageOptions)}
    values = {k: v for k, v in record.items() if k in known}
    if "resize_mode" in values:
        values["resize_mode"] = ResizeMode(values["resize_mode"])
    if "downscale_filter" in values:
        values["downscale_filter"] = DownscaleFilter(values["downscale_filter"])
    if "encode_format" in values:
        values["encode_format"] = EncodeFormat(values["encode_format"])
    if "border_color" in values:
        values["border_color"] = tuple(values["border_color"])
    return ImageOptions(**values)
