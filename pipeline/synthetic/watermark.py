"""A planted class for probes: a semi-transparent stock-photo watermark over some pictures.

The overlay is drawn from its own random stream (seeded from the world's seed), so a world with
watermarks shows the same scenes and captions as the same seed without them, and a world with
``watermark_fraction`` 0 draws nothing from it (byte-identical to worlds made before it existed).
"""

from __future__ import annotations

import random

from PIL import Image, ImageDraw, ImageFont

WORDS = ("STOCK", "PREVIEW", "© PHOTO", "SAMPLE")


def watermark_stream(seed: int) -> random.Random:
    """The random stream of the watermark decisions and overlays of the world of ``seed``."""
    return random.Random(f"watermark:{seed}")


def add_watermark(image: Image.Image, rng: random.Random) -> Image.Image:
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
