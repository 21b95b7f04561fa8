"""Image handling for downloaded bytes: safe decode, resize, encode, hashes."""

from pipeline.image.options import DownscaleFilter, EncodeFormat, ImageOptions, ResampleFilter, ResizeMode
from pipeline.image.process import ProcessedImage, process_image

__all__ = [
    "DownscaleFilter",
    "EncodeFormat",
    "ImageOptions",
    "ProcessedImage",
    "ResampleFilter",
    "ResizeMode",
    "process_image",
]
