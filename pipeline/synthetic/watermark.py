"""A planted class for probes: a semi-transparent stock-photo watermark over some pictures.

Two styles: ``tiled`` (thin text repeated over the picture; nearly invisible once a 64 px model
downscales it) and ``band`` (one bold band across the picture with a large contrasting word, like a
stock-photo preview; what a small model can see, as a real CLIP sees real watermarks).

The overlay is drawn from its own random stream (seeded from the world's seed), so a world with
watermarks shows the same scenes and captions as the same seed without them, and a world with
``watermark_fraction`` 0 draws nothing from it (byte-identical to worlds made before it existed).

Captions can say so (``WorldSpec.watermark_caption_fraction``), as stock photos' alt texts do: a
phrase from :data:`CAPTION_PHRASES` (Chinese captions: :data:`CAPTION_PHRASES_ZH`) before or after
the caption, drawn from a third stream so that the pictures and the rest of the captions stay those
of the same world without it.
"""

from __future__ import annotations

import random

from PIL import Image, ImageDraw, ImageFont

WORDS = ("STOCK", "PREVIEW", "© PHOTO", "SAMPLE")
STYLES = ("tiled", "band")
CAPTION_PHRASES = (
    "stock photo preview with watermark",
    "watermarked stock image",
    "preview image with a watermark",
    "stock picture, watermark",
    "sample photo with watermark overlay",
)
CAPTION_PHRASES_ZH = ("带水印的图库预览图", "水印样图", "图片素材预览，有水印", "带水印的示例照片")


def watermark_stream(seed: int) -> random.Random:
    """The random stream of the watermark decisions and overlays of the world of ``seed``."""
    return random.Random(f"watermark:{seed}")


def watermark_caption_stream(seed: int) -> random.Random:
    """The random stream of the watermark phrases of the captions of the world of ``seed``."""
    return random.Random(f"watermark-caption:{seed}")


def watermark_caption(captions: list[str], language: str, rng: random.Random) -> list[str]:
    """``captions`` (of one picture) with the same watermark phrase drawn from ``rng``, before or
    after each; ``language`` is the captions' (``en``, ``zh`` or ``zh-en``: Chinese phrases but for
    ``en``)."""
    phrase = rng.choice(CAPTION_PHRASES if language == "en" else CAPTION_PHRASES_ZH)
    if rng.random() < 0.5:
        separator = ", " if language == "en" else "，"
        return [f"{phrase}{separator}{caption}" for caption in captions]
    separator = " - " if language == "en" else "，"
    return [f"{caption}{separator}{phrase}" for caption in captions]


def add_watermark(image: Image.Image, rng: random.Random, style: str = "tiled") -> Image.Image:
    """``image`` with a watermark of ``style`` (see the module docstring)."""
    if style == "band":
        return _band(image, rng)
    return _tiled(image, rng)


def _band(image: Image.Image, rng: random.Random) -> Image.Image:
    """A band of 26-34% of the height, 40-55% opaque, with a large word in the opposite colour."""
    width, height = image.size
    word = rng.choice(WORDS)
    colour = (255, 255, 255) if rng.random() < 0.7 else (30, 30, 30)
    text_colour = (30, 30, 30) if colour[0] > 128 else (255, 255, 255)
    fill = rng.randint(100, 140)
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    band = int(height * rng.uniform(0.26, 0.34))
    top = int(height * rng.uniform(0.3, 0.47))
    draw.rectangle([0, top, width, top + band], fill=(*colour, fill))
    size = max(10, int(band * 0.8))
    font = ImageFont.load_default(size=size)
    text_width = draw.textlength(word, font=font)
    if text_width > width * 0.95:  # shrink the word to fit the width
        size = max(10, int(size * width * 0.95 / text_width))
        font = ImageFont.load_default(size=size)
        text_width = draw.textlength(word, font=font)
    draw.text(((width - text_width) / 2, top + (band - size) / 2), word, font=font, fill=(*text_colour, 200))
    return Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB")


def _tiled(image: Image.Image, rng: random.Random) -> Image.Image:
    """``image`` with a tiled, semi-transparent text watermark and a bar behind the middle row."""
    width, height = image.size
    size = max(12, min(width, height) // 6)
    font = ImageFont.load_default(size=size)
    word = rng.choice(WORDS)
    alpha = rng.randint(110, 160)
    colour = (255, 255, 255) if rng.random() < 0.7 else (30, 30, 30)
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    middle = height // 2
    draw.rectangle([0, middle - size, width, middle + size], fill=(*colour, alpha // 3))
    step_y = int(size * 2.2)
    offset = rng.randint(0, step_y)
    for row, y in enumerate(range(-offset, height, step_y)):
        shift = (row % 2) * size * 2
        for x in range(-shift, width, size * len(word)):
            draw.text((x, y), word, font=font, fill=(*colour, alpha))
    return Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB")
