"""Image handling for downloaded bytes: safe decode, resize, encode, hashes."""

from pipeline.image.options import EncodeFormat, ImageOptions, ResizeMode
from pipeline.image.process import ProcessedImage, process_image

__all__ = ["EncodeFormat", "ImageOptions", "ProcessedImage", "ResizeMode", "process_image"]
