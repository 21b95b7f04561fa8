"""Encoding the stored image."""

from __future__ import annotations

import io

from PIL import Image

from pipeline.errors import ErrorClass, SampleError
from pipeline.image.options import EncodeFormat, ImageOptions


def encode(image: Image.Image, options: ImageOptions) -> bytes:
    """Encode an RGB image as JPEG or WebP with the configured quality, or as PNG with the
    configured compression level."""
    buffer = io.BytesIO()
    try:
        if options.encode_format is EncodeFormat.JPEG:
            image.save(buffer, format="JPEG", quality=options.encode_quality)
        elif options.encode_format is EncodeFormat.PNG:
            image.save(buffer, format="PNG", compress_level=options.encode_quality)
        else:
            image.save(buffer, format="WEBP", quality=options.encode_quality)
    except (OSError, ValueError) as exc:
        raise SampleError(ErrorClass.ENCODE_ERROR, f"cannot encode {options.extension}: {exc}") from exc
    return buffer.getvalue()
