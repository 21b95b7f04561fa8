"""Safe decoding: header checks before pixels are decoded, then normalisation to 8-bit RGB."""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pipeline.errors import ErrorClass, SampleError
from pipeline.image.options import ImageOptions, ResizeMode

# Raster formats we accept; anything else (SVG, PDF, EPS, ...) is refused as undecodable.
ACCEPTED_FORMATS = ("JPEG", "MPO", "PNG", "GIF", "WEBP", "BMP", "TIFF", "AVIF")
_WHITE = (255, 255, 255)
# The header check below replaces Pillow's global bomb check, whose fixed limit would override
# --max-pixels (and whose warning is easy to miss).
Image.MAX_IMAGE_PIXELS = None
_EXIF_ORIENTATION = 0x0112
_TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)  # these swap width and height


def open_checked(data: bytes, options: ImageOptions) -> Image.Image:
    """Open ``data`` lazily and apply the header-only filters (pixel count, size, aspect).

    Nothing is decoded yet: Pillow reads only the header here, so a 60000x60000 "bomb" costs a
    few bytes of work before it is refused.
    """
    try:
        image = Image.open(io.BytesIO(data), formats=_available_formats())
    except UnidentifiedImageError as exc:
        raise SampleError(ErrorClass.UNDECODABLE, f"not a supported image ({_sniff(data)})") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise SampleError(ErrorClass.UNDECODABLE, f"cannot read image header: {exc}") from exc
    # Feed the decoder the whole file at once rather than in 64 KiB pieces (1-2% of a decode).
    image.decodermaxblock = max(image.decodermaxblock, len(data))
    width, height = image.size
    if width < 1 or height < 1:
        raise SampleError(ErrorClass.UNDECODABLE, f"image header claims size {width}x{height}")
    if width * height > options.max_pixels:
        raise SampleError(
            ErrorClass.IMAGE_TOO_LARGE,
            f"{width}x{height} = {width * height} pixels exceeds --max-pixels {options.max_pixels}",
        )
    if min(width, height) < options.min_image_size:
        raise SampleError(
            ErrorClass.IMAGE_TOO_SMALL,
            f"{width}x{height} is smaller than --min-image-size {options.min_image_size}",
        )
    aspect = max(width, height) / min(width, height)
    if aspect > options.max_aspect_ratio:
        raise SampleError(
            ErrorClass.ASPECT_RATIO,
            f"aspect ratio {aspect:.2f} exceeds --max-aspect-ratio {options.max_aspect_ratio}",
        )
    return image


def target_scale(width: int, height: int, options: ImageOptions) -> float:
    """Scale factor the resize step will apply to an image of this size (1.0 for mode ``no``)."""
    if options.resize_mode is ResizeMode.NO:
        return 1.0
    if options.resize_mode in (ResizeMode.BORDER, ResizeMode.KEEP_RATIO_LARGEST):
        scale = options.image_size / max(width, height)
    else:  # KEEP_RATIO and CENTER_CROP both bring the shorter side to image_size
        scale = options.image_size / min(width, height)
    if options.resize_only_if_bigger:
        scale = min(scale, 1.0)
    return scale


def decode_rgb(image: Image.Image, options: ImageOptions) -> tuple[Image.Image, tuple[int, int]]:
    """Decode the first frame of ``image`` into 8-bit RGB with EXIF orientation applied.

    Returns the image and the full-resolution size after orientation (what the resize step
    scales from). JPEGs are decoded at a reduced scale (1/2, 1/4 or 1/8 via DCT scaling) when the
    target is at least twice smaller, several times faster than a full decode and a resize.
    """
    width, height = image.size
    scale = target_scale(width, height, options)
    if options.reduced_decode and image.format in ("JPEG", "MPO") and scale <= 0.5:
        image.draft(None, (math.ceil(image.width * scale), math.ceil(image.height * scale)))
    try:
        image.seek(0)
        image.load()
        if image.getexif().get(_EXIF_ORIENTATION) in _TRANSPOSING_ORIENTATIONS:
            width, height = height, width
        image = ImageOps.exif_transpose(image) or image
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise SampleError(ErrorClass.UNDECODABLE, f"cannot decode image: {exc}") from exc
    return to_rgb(image), (width, height)


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB: 16-bit scaled down, alpha composited on white."""
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        pixels = np.asarray(image)
        if pixels.max(initial=0) > 255:
            pixels = pixels.astype(np.uint32) >> 8
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "L")
    elif mode == "F":
        pixels = np.asarray(image)
        peak = 1.0 if pixels.max(initial=0) <= 1.0 else 255.0
        image = Image.fromarray(np.clip(pixels / peak * 255.0, 0, 255).astype(np.uint8), "L")
    if image.mode == "P" or (image.mode in ("L", "RGB") and "transparency" in image.info):
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _WHITE + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode != "RGB":
        image = image.convert("RGB")
    return image


def _available_formats() -> tuple[str, ...]:
    Image.init()
    return tuple(f for f in ACCEPTED_FORMATS if f in Image.OPEN)


def _sniff(data: bytes) -> str:
    head = data[:64].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        return "looks like HTML"
    if head.startswith(b"<?xml") or b"<svg" in head:
        return "looks like XML/SVG"
    if not data:
        return "empty body"
    return f"first bytes {data[:8].hex()}"
