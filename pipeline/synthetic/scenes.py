"""Procedurally drawn scenes with compositional captions and class labels."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "diamond")
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 210, 40),
    "purple": (140, 60, 180),
    "orange": (245, 140, 30),
    "white": (250, 250, 250),
    "black": (20, 20, 20),
}
BACKGROUNDS = {
    "grey": (150, 150, 150),
    "pink": (240, 180, 200),
    "teal": (60, 150, 150),
    "beige": (225, 210, 170),
}
TEXTURES = ("plain", "striped", "dotted")
POSITIONS = ("left", "right", "top", "bottom", "centre")
COUNT_WORDS = ("one", "two", "three")

# Caption languages of a world (docs/synthetic.md, "Languages"): ``en`` (the default), ``zh``,
# ``bilingual`` (each picture captioned at random in English or Chinese) and ``mixed`` (at random in
# English, Chinese, or Chinese with the colour and shape in English, as code-mixed web captions are).
LANGUAGES = ("en", "zh", "bilingual", "mixed")
CAPTION_LANGUAGES = ("en", "zh", "zh-en")  # what one caption is written in (``mixed`` draws one)
SHAPES_ZH = {"circle": "圆形", "square": "正方形", "triangle": "三角形", "diamond": "菱形"}
COLOURS_ZH = {
    "red": "红色",
    "green": "绿色",
    "blue": "蓝色",
    "yellow": "黄色",
    "purple": "紫色",
    "orange": "橙色",
    "white": "白色",
    "black": "黑色",
}
BACKGROUNDS_ZH = {"grey": "灰色", "pink": "粉色", "teal": "青色", "beige": "米色"}
TEXTURES_ZH = {"plain": "纯", "striped": "条纹", "dotted": "波点"}
POSITIONS_ZH = {"left": "左侧", "right": "右侧", "top": "上方", "bottom": "下方", "centre": "中央"}
COUNT_WORDS_ZH = ("一个", "两个", "三个")


@dataclass(frozen=True)
class Scene:
    """What a picture shows; the caption and the zero-shot label are derived from it."""

    shape: str
    colour: str
    count: int
    position: str
    background: str
    texture: str

    @property
    def label(self) -> str:
        """Class for zero-shot evaluation: the object's colour and shape."""
        return f"{self.colour} {self.shape}"

    @property
    def caption(self) -> str:
        plural = "s" if self.count > 1 else ""
        return (
            f"{COUNT_WORDS[self.count - 1]} {self.colour} {self.shape}{plural} at the {self.position} "
            f"of a {self.texture} {self.background} background"
        )

    def caption_in(self, language: str) -> str:
        """The caption in ``language`` (one of :data:`CAPTION_LANGUAGES`); ``en`` is :attr:`caption`.

        ``zh``: "两个红色的圆形，位于条纹灰色背景的左侧"; ``zh-en``: the same sentence with the colour
        and shape in English ("两个red circles，位于条纹灰色背景的左侧").
        """
        if language == "en":
            return self.caption
        if language == "zh":
            thing = f"{COLOURS_ZH[self.colour]}的{SHAPES_ZH[self.shape]}"
        elif language == "zh-en":
            thing = f"{self.colour} {self.shape}{'s' if self.count > 1 else ''}"
        else:
            raise ValueError(f"unknown caption language {language!r}; known: {CAPTION_LANGUAGES}")
        return (
            f"{COUNT_WORDS_ZH[self.count - 1]}{thing}，位于{TEXTURES_ZH[self.texture]}"
            f"{BACKGROUNDS_ZH[self.background]}背景的{POSITIONS_ZH[self.position]}"
        )


def random_scene(rng: random.Random) -> Scene:
    """Draw a scene uniformly at random."""
    return Scene(
        shape=rng.choice(SHAPES),
        colour=rng.choice(list(COLOURS)),
        count=rng.randint(1, 3),
        position=rng.choice(POSITIONS),
        background=rng.choice(list(BACKGROUNDS)),
        texture=rng.choice(TEXTURES),
    )


def all_labels() -> list[str]:
    """Every class label, in a fixed order."""
    return [f"{c} {s}" for c in COLOURS for s in SHAPES]


def label_zh(label: str) -> str:
    """The Chinese class name of an English label: ``red circle`` -> ``红色圆形``."""
    colour, shape = label.split()
    return f"{COLOURS_ZH[colour]}{SHAPES_ZH[shape]}"


def caption_language(language: str, rng: random.Random) -> str:
    """What one caption of a ``language`` world is written in (``mixed``: drawn from ``rng``)."""
    if language not in LANGUAGES:
        raise ValueError(f"unknown world language {language!r}; known: {LANGUAGES}")
    if language == "mixed":
        return rng.choice(CAPTION_LANGUAGES)
    if language == "bilingual":
        return rng.choice(("en", "zh"))
    return language


def render(scene: Scene, size: tuple[int, int], rng: random.Random) -> Image.Image:
    """Draw ``scene`` at ``size`` with small random jitter, so no two renders are identical."""
    width, height = size
    background = BACKGROUNDS[scene.background]
    image = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(image)
    shade = tuple(max(0, c - 40) for c in background)
    if scene.texture == "striped":
        step = max(8, width // 16)
        for x in range(-height, width, step):
            draw.line([(x, 0), (x + height, height)], fill=shade, width=max(2, step // 3))
    elif scene.texture == "dotted":
        step = max(10, width // 14)
        for y in range(step // 2, height, step):
            for x in range(step // 2, width, step):
                r = max(2, step // 6)
                draw.ellipse([x - r, y - r, x + r, y + r], fill=shade)
    cx, cy = _anchor(scene.position, width, height)
    unit = min(width, height) / 7
    for i in range(scene.count):
        ox = (i - (scene.count - 1) / 2) * unit * 1.25 + rng.uniform(-unit * 0.1, unit * 0.1)
        oy = rng.uniform(-unit * 0.15, unit * 0.15)
        _shape(draw, scene.shape, cx + ox, cy + oy, unit * rng.uniform(0.45, 0.55), COLOURS[scene.colour])
    return _lighting(image, rng)


def _lighting(image: Image.Image, rng: random.Random) -> Image.Image:
    """Uneven, smooth lighting (a random 3x3 brightness field, +-24 levels), as in photographs.

    Without it two renders of similar scenes share their low frequencies, which is all a
    perceptual hash looks at, and distinct pictures would look like near-duplicates.
    """
    field = Image.new("L", (3, 3))
    field.putdata([rng.randint(104, 152) for _ in range(9)])
    light = np.asarray(field.resize(image.size, Image.Resampling.BICUBIC), dtype=np.int16) - 128
    lit = np.asarray(image, dtype=np.int16) + light[:, :, None]
    return Image.fromarray(np.clip(lit, 0, 255).astype(np.uint8))


def _anchor(position: str, width: int, height: int) -> tuple[float, float]:
    return {
        "left": (width * 0.28, height * 0.5),
        "right": (width * 0.72, height * 0.5),
        "top": (width * 0.5, height * 0.25),
        "bottom": (width * 0.5, height * 0.75),
        "centre": (width * 0.5, height * 0.5),
    }[position]


def _shape(
    draw: ImageDraw.ImageDraw, shape: str, x: float, y: float, r: float, fill: tuple[int, int, int]
) -> None:
    outline = (0, 0, 0) if fill != COLOURS["black"] else (255, 255, 255)
    if shape == "circle":
        draw.ellipse([x - r, y - r, x + r, y + r], fill=fill, outline=outline, width=2)
    elif shape == "square":
        draw.rectangle([x - r, y - r, x + r, y + r], fill=fill, outline=outline, width=2)
    elif shape == "triangle":
        draw.polygon([(x, y - r), (x + r, y + r), (x - r, y + r)], fill=fill, outline=outline)
    else:
        draw.polygon([(x, y - r), (x + r, y), (x, y + r), (x - r, y)], fill=fill, outline=outline)
