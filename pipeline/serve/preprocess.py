"""open_clip's eval image preprocessing without torch: PIL resize and crop, numpy normalisation.

The steps and their arithmetic are torchvision's as open_clip composes them for inference:
``shortest`` resizes the shorter side to the model's size (the longer one to
``int(size * long / short)``) and centre-crops (``round`` of half the excess); ``squash``
resizes to the size directly. Resizing happens in the image's own mode, then the image becomes
RGB, ``/ 255`` and ``(x - mean) / std`` in float32, channels first.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

RESIZE_MODES = ("shortest", "squash")
INTERPOLATIONS = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}


class UndecodableImage(ValueError):
    """The bytes are not an image PIL can read."""


@dataclass(frozen=True)
class Preprocess:
    """The image preprocessing ``model.json`` describes (its ``image`` section)."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str
    resize_mode: str

    @classmethod
    def from_manifest(cls, image: dict[str, Any]) -> Preprocess:
        """From ``model.json``'s ``image`` section."""
        return cls(
            int(image["size"]),
            tuple(image["mean"]),
            tuple(image["std"]),
            image["interpolation"],
            image["resize_mode"],
        )

    def supported(self) -> str | None:
        """Why this preprocessing cannot be reproduced here, or None when it can."""
        if self.resize_mode not in RESIZE_MODES:
            return f"resize mode {self.resize_mode!r} (supported: {', '.join(RESIZE_MODES)})"
        if self.interpolation not in INTERPOLATIONS:
            return f"interpolation {self.interpolation!r} (supported: {', '.join(INTERPOLATIONS)})"
        return None

    def pixels(self, image: Image.Image) -> np.ndarray:
        """One image -> ``(3, size, size)`` float32, as open_clip's eval transform gives."""
        resample = INTERPOLATIONS[self.interpolation]
        size = self.size
        width, height = image.size
        if self.resize_mode == "squash":
            image = image.resize((size, size), resample)
        else:
            if width <= height:
                target = (size, int(size * height / width))
            else:
                target = (int(size * width / height), size)
            if target != (width, height):
                image = image.resize(target, resample)
            left = int(round((image.size[0] - size) / 2.0))
            top = int(round((image.size[1] - size) / 2.0))
            image = image.crop((left, top, left + size, top + size))
        if image.mode != "RGB":
            image = image.convert("RGB")
        array = np.asarray(image, dtype=np.float32) / np.float32(255)
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        return ((array - mean) / std).transpose(2, 0, 1)

    def batch(self, images: list[Image.Image]) -> np.ndarray:
        """``(n, 3, size, size)`` float32."""
        return (
            np.stack([self.pixels(image) for image in images])
            if images
            else np.zeros((0, 3, self.size, self.size), dtype=np.float32)
        )


def decode_image(data: bytes) -> Image.Image:
    """Bytes -> a loaded PIL image; ``UndecodableImage`` with PIL's reason otherwise."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except UnidentifiedImageError as exc:
        raise UndecodableImage("not in an image format PIL reads") from exc
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise UndecodableImage(f"{type(exc).__name__}: {str(exc)[:200]}") from exc
    return image
