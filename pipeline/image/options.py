"""Options for turning downloaded bytes into a stored image."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

from pipeline.cli_options import option, recorded
from pipeline.errors import UserInputError


class ResizeMode(StrEnum):
    """Resize modes, with img2dataset's meanings."""

    NO = "no"  # keep the decoded size
    BORDER = "border"  # fit inside size x size, pad to a square with the border colour
    KEEP_RATIO = "keep_ratio"  # scale so the shorter side is `size`, keep aspect ratio
    CENTER_CROP = "center_crop"  # scale shorter side to `size`, crop the centre square
    KEEP_RATIO_LARGEST = "keep_ratio_largest"  # scale so the longer side is `size`, no padding


class ResampleFilter(StrEnum):
    """Resampling filter; ``area`` averages pixels like img2dataset's default (cv2 INTER_AREA)."""

    AREA = "area"
    NEAREST = "nearest"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    LANCZOS = "lanczos"


DownscaleFilter = ResampleFilter  # its name before upscaling had a choice too

# img2dataset's (OpenCV's) other names for the same filters.
_FILTER_SYNONYMS = {"linear": "bilinear", "cubic": "bicubic", "lanczos4": "lanczos"}


def resample_filter(text: str) -> ResampleFilter:
    """A filter by name, img2dataset's spellings included (``cubic``, ``linear``, ``lanczos4``)."""
    name = text.strip().lower()
    try:
        return ResampleFilter(_FILTER_SYNONYMS.get(name, name))
    except ValueError:
        raise ValueError(f"expected one of {', '.join(f.value for f in ResampleFilter)}") from None


_FILTERS = "{" + ",".join(f.value for f in ResampleFilter) + "}"


class EncodeFormat(StrEnum):
    JPEG = "jpg"
    WEBP = "webp"
    PNG = "png"


# --encode-quality when not given; for PNG it is the zlib compression level 0..9, as in img2dataset.
DEFAULT_QUALITY = {EncodeFormat.JPEG: 95, EncodeFormat.WEBP: 95, EncodeFormat.PNG: 6}


def _pixel_count(text: str) -> int:
    """An int, or img2dataset's ``inf`` (no limit)."""
    value = float(text)
    if math.isinf(value) and value > 0:
        return sys.maxsize
    if value != int(value):
        raise ValueError(f"expected a whole number of pixels, got {text!r}")
    return int(value)


@dataclass(frozen=True)
class ImageOptions:
    """How a downloaded image is checked, resized and re-encoded."""

    image_size: int = option(256, help="target size in pixels (see --resize-mode)", aliases=("--image_size",))
    resize_mode: ResizeMode = option(
        ResizeMode.BORDER,
        choices=[m.value for m in ResizeMode],
        help="no: keep size; border: fit and pad to a square; keep_ratio: shorter side = size; "
        "center_crop: shorter side = size, crop the centre square; keep_ratio_largest: longer side = "
        "size, no padding",
        aliases=("--resize_mode",),
    )
    resize_only_if_bigger: bool = option(
        False, help="never upscale small images", aliases=("--resize_only_if_bigger",)
    )
    downscale_filter: ResampleFilter = option(
        ResampleFilter.AREA,
        parse=resample_filter,
        metavar=_FILTERS,
        help="filter for shrinking (area: pixel averaging, as img2dataset)",
        aliases=("--downscale_interpolation",),
    )
    # Bicubic: what this job did before the option existed (img2dataset's default is lanczos).
    upscale_filter: ResampleFilter = option(
        ResampleFilter.BICUBIC,
        parse=resample_filter,
        metavar=_FILTERS,
        help="filter for enlarging images smaller than the target",
        aliases=("--upscale_interpolation",),
    )
    border_color: tuple[int, int, int] = (255, 255, 255)
    encode_format: EncodeFormat = option(
        EncodeFormat.JPEG,
        choices=[f.value for f in EncodeFormat],
        help="format of stored images",
        aliases=("--encode_format",),
    )
    # None: DEFAULT_QUALITY of the format (resolved in __post_init__, so records hold the number).
    encode_quality: int | None = option(
        None,
        parse=int,
        show=lambda _: "95 for jpg and webp, 6 for png",
        help="JPEG/WebP quality 1..100; for png the zlib compression level 0..9 (as img2dataset)",
        aliases=("--encode_quality",),
    )
    # Filters on the original image, applied before any resizing.
    min_image_size: int = option(
        0, help="minimum shorter side of the original", aliases=("--min_image_size",)
    )
    max_aspect_ratio: float = option(
        float("inf"),
        help="refuse originals whose long/short side ratio is larger",
        aliases=("--max_aspect_ratio",),
    )
    # Decompression-bomb guard: refuse images whose header claims more pixels than this
    # (Pillow's own default warning threshold).
    max_pixels: int = option(
        89_478_485,
        parse=_pixel_count,
        help="decompression-bomb guard on the header's width x height (img2dataset: max_image_area)",
        aliases=("--max_image_area",),
    )
    # Decode JPEGs at a reduced scale (DCT scaling) when the target is much smaller.
    reduced_decode: bool = option(True, negate="--no-reduced-decode", help="always decode JPEGs at full size")

    def __post_init__(self) -> None:
        # Enum fields given by value ("png") become the enum, so comparisons by identity hold.
        for name, kind in _ENUM_FIELDS.items():
            value = getattr(self, name)
            if not isinstance(value, kind):
                try:
                    object.__setattr__(self, name, kind(value))
                except ValueError:
                    choices = ", ".join(v.value for v in kind)
                    raise UserInputError(f"{name}: expected one of {choices}, got {value!r}") from None
        if self.image_size < 1:
            raise UserInputError(f"--image-size must be >= 1, got {self.image_size}")
        if self.encode_quality is None:
            object.__setattr__(self, "encode_quality", DEFAULT_QUALITY[self.encode_format])
        if self.encode_format is EncodeFormat.PNG:
            if not 0 <= self.encode_quality <= 9:
                raise UserInputError(
                    f"--encode-quality is the PNG compression level 0..9 with --encode-format png, "
                    f"got {self.encode_quality}"
                )
        elif not 1 <= self.encode_quality <= 100:
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


_ENUM_FIELDS: dict[str, type[StrEnum]] = {
    "resize_mode": ResizeMode,
    "downscale_filter": ResampleFilter,
    "upscale_filter": ResampleFilter,
    "encode_format": EncodeFormat,
}


def image_options_from_record(record: dict[str, Any]) -> ImageOptions:
    """Rebuild :class:`ImageOptions` from its JSON record (``raw/_options.json``'s ``image``)."""
    known = {f.name for f in fields(ImageOptions)}
    values = {k: v for k, v in record.items() if k in known}
    if "resize_mode" in values:
        values["resize_mode"] = ResizeMode(values["resize_mode"])
    for name in ("downscale_filter", "upscale_filter"):
        if name in values:
            values[name] = ResampleFilter(values[name])
    if "encode_format" in values:
        values["encode_format"] = EncodeFormat(values["encode_format"])
    if "border_color" in values:
        values["border_color"] = tuple(values["border_color"])
    return ImageOptions(**values)


# Options added after datasets were written, with the value those datasets were made with: a
# record leaves them out at that value, so raw/_options.json (and the raw shards' fingerprints)
# of existing datasets still match and their downloads resume.
_RECORDED_ONLY_IF_CHANGED = {"upscale_filter": ResampleFilter.BICUBIC.value}


def image_record(options: ImageOptions) -> dict[str, Any]:
    """``options`` as JSON for ``raw/_options.json`` and fingerprints (see above)."""
    record = recorded(options)
    for name, old in _RECORDED_ONLY_IF_CHANGED.items():
        if record.get(name) == old:
            del record[name]
    return record
