"""Resize modes (img2dataset semantics) applied to an RGB image."""

from __future__ import annotations

from PIL import Image

from pipeline.image.decode import target_scale
from pipeline.image.options import ImageOptions, ResampleFilter, ResizeMode

_RESAMPLE = {
    ResampleFilter.AREA: Image.Resampling.BOX,
    ResampleFilter.NEAREST: Image.Resampling.NEAREST,
    ResampleFilter.BILINEAR: Image.Resampling.BILINEAR,
    ResampleFilter.BICUBIC: Image.Resampling.BICUBIC,
    ResampleFilter.LANCZOS: Image.Resampling.LANCZOS,
}


def resize(image: Image.Image, original_size: tuple[int, int], options: ImageOptions) -> Image.Image:
    """Resize an RGB ``image`` for storage.

    ``original_size`` is the full-resolution size after EXIF orientation, so the result does not
    depend on whether the decoder already shrank the image.
    """
    if options.resize_mode is ResizeMode.NO:
        return image
    scale = target_scale(*original_size, options)
    width = max(1, round(original_size[0] * scale))
    height = max(1, round(original_size[1] * scale))
    if (width, height) != image.size:
        downscale = width < image.size[0]
        resample = _RESAMPLE[options.downscale_filter if downscale else options.upscale_filter]
        image = image.resize((width, height), resample)
    size = options.image_size
    if options.resize_mode is ResizeMode.CENTER_CROP:
        if width > size or height > size:
            left = (width - min(width, size)) // 2
            top = (height - min(height, size)) // 2
            image = image.crop((left, top, left + min(width, size), top + min(height, size)))
    elif options.resize_mode is ResizeMode.BORDER and (width, height) != (size, size):
        canvas = Image.new("RGB", (max(size, width), max(size, height)), options.border_color)
        canvas.paste(image, ((canvas.width - width) // 2, (canvas.height - height) // 2))
        image = canvas
    return image
