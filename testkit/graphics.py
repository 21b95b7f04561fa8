"""Flat graphics for the dedup quality check: icons, emoji-like faces, logos, flags, gradients.

Product shots, logos and icons on plain backgrounds are a large share of web images, and the
hardest case for perceptual hashes: few edges, large uniform areas, so unrelated pictures of one
layout hash alike. Two sources:

- :func:`flat_graphic`: pictures drawn with Pillow from a :class:`Layout` (what is drawn where)
  and a palette (which colours). :func:`recoloured` draws the same layout in other colours: a
  different picture of the same layout, the hard negative that issue 16 found in the demo.
- :func:`system_icons`: the icons of Debian's ``adwaita-icon-theme`` when installed (chromium
  pulls it in): full-colour 512 px icons and black-and-white symbolic glyphs, put on a plain
  background at web-image sizes. Empty when the theme is not there.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Flat design colours (Material / iOS-like): what icons and logos use.
PALETTE = (
    (229, 57, 53),
    (216, 27, 96),
    (142, 36, 170),
    (94, 53, 177),
    (57, 73, 171),
    (30, 136, 229),
    (3, 155, 229),
    (0, 172, 193),
    (0, 137, 123),
    (67, 160, 71),
    (124, 179, 66),
    (192, 202, 51),
    (253, 216, 53),
    (255, 179, 0),
    (251, 140, 0),
    (244, 81, 30),
    (109, 76, 65),
    (117, 117, 117),
    (84, 110, 122),
    (33, 33, 33),
)
BACKGROUNDS = ((255, 255, 255), (250, 250, 250), (245, 245, 245), (238, 238, 238), (33, 33, 33))
KINDS = ("icon", "emoji", "logo", "flag", "gradient")
GLYPHS = ("circle", "square", "rounded", "ring", "star", "heart", "triangle", "plus")
WORDS = ("ACME", "Nova", "zeta", "BLUE", "OK", "Go", "fox", "SALE", "Kiwi", "Orbit", "Q", "M", "Hi", "LUX")
FONTS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSerif-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
)


@dataclass(frozen=True)
class Layout:
    """What a flat graphic shows, without its colours."""

    kind: str
    size: tuple[int, int]
    glyphs: tuple[tuple[str, float, float, float], ...] = ()  # (glyph, cx, cy, radius) in 0-1 units
    text: str = ""
    font: int = 0
    stripes: int = 0
    vertical: bool = False
    angle: float = 0.0
    mouth: int = 0


@dataclass(frozen=True)
class Graphic:
    """A layout and its colours: background, then one colour per element."""

    layout: Layout
    background: tuple[int, int, int]
    colours: tuple[tuple[int, int, int], ...]

    @property
    def source(self) -> str:
        """Pictures with the same source are the same picture (same layout and colours, any size)."""
        return f"graphic:{replace(self.layout, size=(0, 0))}:{self.background}:{self.colours}"


def _size(rng: random.Random) -> tuple[int, int]:
    if rng.random() < 0.5:
        side = rng.randint(256, 640)
        return side, side
    width = rng.randint(300, 640)
    return width, max(160, min(640, int(width / rng.uniform(0.6, 1.8))))


def random_layout(rng: random.Random, kind: str | None = None) -> Layout:
    """A random layout of one of :data:`KINDS`."""
    kind = kind or rng.choice(KINDS)
    size = _size(rng)
    if kind == "icon":
        count = rng.choice((1, 1, 1, 2, 3))
        glyphs = []
        for i in range(count):
            radius = rng.uniform(0.22, 0.4) if i == 0 else rng.uniform(0.08, 0.18)
            cx = 0.5 if i == 0 else rng.uniform(0.25, 0.75)
            cy = 0.5 if i == 0 else rng.uniform(0.25, 0.75)
            glyphs.append((rng.choice(GLYPHS), cx, cy, radius))
        return Layout(kind, size, tuple(glyphs))
    if kind == "emoji":
        return Layout(kind, size, (("circle", 0.5, 0.5, rng.uniform(0.3, 0.42)),), mouth=rng.randint(0, 3))
    if kind == "logo":
        glyph = (rng.choice(GLYPHS), rng.uniform(0.15, 0.3), 0.5, rng.uniform(0.12, 0.2))
        return Layout(kind, size, (glyph,) if rng.random() < 0.6 else (), rng.choice(WORDS), rng.randrange(3))
    if kind == "flag":
        emblem = (("circle", 0.5, 0.5, rng.uniform(0.12, 0.2)),) if rng.random() < 0.4 else ()
        return Layout(kind, size, emblem, stripes=rng.choice((2, 3, 3, 4)), vertical=rng.random() < 0.5)
    if kind == "gradient":
        glyph = (("circle", rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.1, 0.25)),)
        return Layout(kind, size, glyph if rng.random() < 0.5 else (), angle=rng.uniform(0, 2 * math.pi))
    raise KeyError(f"unknown graphic kind {kind!r}; known: {KINDS}")


def random_graphic(rng: random.Random, kind: str | None = None) -> Graphic:
    """A random layout in random palette colours."""
    layout = random_layout(rng, kind)
    return Graphic(layout, *_colours(layout, rng))


def _colours(
    layout: Layout, rng: random.Random, avoid: tuple[tuple[int, int, int], ...] = ()
) -> tuple[tuple[int, int, int], tuple[tuple[int, int, int], ...]]:
    choices = [c for c in PALETTE if c not in avoid] or list(PALETTE)
    if layout.kind in ("flag", "gradient"):
        background = rng.choice(choices)
        n = max(2, layout.stripes) + len(layout.glyphs)
    else:
        background = rng.choice(BACKGROUNDS) if rng.random() < 0.8 else rng.choice(choices)
        n = max(1, len(layout.glyphs)) + 1
    # Never the background's colour: every element shows (a flat one-colour picture is not a graphic).
    others = [c for c in choices if c != background]
    colours = tuple(rng.sample(others, min(n, len(others))))
    return background, colours


def recoloured(graphic: Graphic, rng: random.Random) -> Graphic:
    """The same layout in other colours (the background kept or not): a different picture."""
    background, colours = _colours(graphic.layout, rng, avoid=graphic.colours)
    if rng.random() < 0.5 and graphic.layout.kind not in ("flag", "gradient"):
        background = graphic.background
    return replace(graphic, background=background, colours=colours)


def _glyph(draw: ImageDraw.ImageDraw, glyph: str, x: float, y: float, r: float, fill: tuple) -> None:
    if glyph == "circle":
        draw.ellipse([x - r, y - r, x + r, y + r], fill=fill)
    elif glyph == "square":
        draw.rectangle([x - r, y - r, x + r, y + r], fill=fill)
    elif glyph == "rounded":
        draw.rounded_rectangle([x - r, y - r, x + r, y + r], radius=r * 0.35, fill=fill)
    elif glyph == "ring":
        draw.ellipse([x - r, y - r, x + r, y + r], outline=fill, width=max(2, int(r * 0.3)))
    elif glyph == "star":
        points = [
            (
                x + (r if k % 2 == 0 else r * 0.45) * math.sin(k * math.pi / 5),
                y - (r if k % 2 == 0 else r * 0.45) * math.cos(k * math.pi / 5),
            )
            for k in range(10)
        ]
        draw.polygon(points, fill=fill)
    elif glyph == "heart":
        draw.ellipse([x - r, y - r * 0.8, x, y + r * 0.1], fill=fill)
        draw.ellipse([x, y - r * 0.8, x + r, y + r * 0.1], fill=fill)
        draw.polygon([(x - r * 0.97, y - r * 0.2), (x + r * 0.97, y - r * 0.2), (x, y + r)], fill=fill)
    elif glyph == "triangle":
        draw.polygon([(x, y - r), (x + r, y + r * 0.8), (x - r, y + r * 0.8)], fill=fill)
    else:  # plus
        w = r * 0.35
        draw.rectangle([x - r, y - w, x + r, y + w], fill=fill)
        draw.rectangle([x - w, y - r, x + w, y + r], fill=fill)


def draw(graphic: Graphic) -> Image.Image:
    """Render a graphic (deterministic: the same graphic gives the same pixels)."""
    layout, colours = graphic.layout, graphic.colours
    width, height = layout.size
    unit = min(width, height)
    image = Image.new("RGB", layout.size, graphic.background)
    pen = ImageDraw.Draw(image)
    if layout.kind == "flag":
        n = layout.stripes
        for i in range(n):
            if layout.vertical:
                pen.rectangle([i * width / n, 0, (i + 1) * width / n, height], fill=colours[i % len(colours)])
            else:
                pen.rectangle(
                    [0, i * height / n, width, (i + 1) * height / n], fill=colours[i % len(colours)]
                )
    elif layout.kind == "gradient":
        y, x = np.mgrid[0:height, 0:width].astype(np.float32)
        ramp = math.cos(layout.angle) * (x / width - 0.5) + math.sin(layout.angle) * (y / height - 0.5)
        ramp = ((ramp - ramp.min()) / max(1e-6, float(ramp.max() - ramp.min())))[..., None]
        a, b = np.array(graphic.background, np.float32), np.array(colours[0], np.float32)
        image = Image.fromarray((a + (b - a) * ramp + 0.5).astype(np.uint8))
        pen = ImageDraw.Draw(image)
    first = {"flag": layout.stripes, "emoji": 0}.get(layout.kind, 1)
    for i, (glyph, cx, cy, r) in enumerate(layout.glyphs):
        fill = colours[(i + first) % len(colours)]
        _glyph(pen, glyph, cx * width, cy * height, r * unit, fill)
    if layout.kind == "emoji":
        face = colours[1]
        _, cx, cy, r = layout.glyphs[0]
        x, y, r = cx * width, cy * height, r * unit
        for side in (-1, 1):
            pen.ellipse(
                [x + side * r * 0.35 - r * 0.1, y - r * 0.35, x + side * r * 0.35 + r * 0.1, y - r * 0.05],
                fill=face,
            )
        box = [x - r * 0.5, y - r * 0.2, x + r * 0.5, y + r * 0.6]
        if layout.mouth == 0:
            pen.arc(box, 20, 160, fill=face, width=max(2, int(r * 0.08)))
        elif layout.mouth == 1:
            pen.arc(
                [x - r * 0.5, y + r * 0.3, x + r * 0.5, y + r * 0.9],
                200,
                340,
                fill=face,
                width=max(2, int(r * 0.08)),
            )
        elif layout.mouth == 2:
            pen.ellipse([x - r * 0.2, y + r * 0.2, x + r * 0.2, y + r * 0.55], fill=face)
        else:
            pen.line(
                [x - r * 0.4, y + r * 0.4, x + r * 0.4, y + r * 0.4], fill=face, width=max(2, int(r * 0.08))
            )
    if layout.text:
        font = ImageFont.truetype(
            FONTS[layout.font], size=max(12, int(unit * (0.5 if len(layout.text) < 3 else 0.3)))
        )
        left = width * (0.5 if not layout.glyphs else 0.62)
        pen.text((left, height / 2), layout.text, fill=colours[0], font=font, anchor="mm")
    return image


def flat_graphic(rng: random.Random, kind: str | None = None) -> tuple[str, Image.Image]:
    """A random flat graphic: its source key and its picture."""
    graphic = random_graphic(rng, kind)
    return graphic.source, draw(graphic)


ICON_THEME = Path("/usr/share/icons/Adwaita")


def system_icons(rng: random.Random, colour: int, symbolic: int) -> list[tuple[str, Image.Image]]:
    """Up to ``colour`` full-colour and ``symbolic`` black-and-white icons of the Adwaita theme,
    each on a plain background (white or a light palette colour) at a web-image size."""
    if not ICON_THEME.is_dir():
        return []
    full = sorted(p for p in (ICON_THEME / "512x512").rglob("*.png") if "symbolic" not in p.name)
    glyphs = sorted((ICON_THEME / "96x96").rglob("*-symbolic.symbolic.png"))
    picked = rng.sample(full, min(colour, len(full))) + rng.sample(glyphs, min(symbolic, len(glyphs)))
    out = []
    for path in picked:
        with Image.open(path) as icon:
            icon = icon.convert("RGBA")
        side = rng.randint(256, 512)
        canvas_size = (side, side) if rng.random() < 0.6 else (int(side * rng.uniform(1.2, 1.6)), side)
        background = rng.choice(BACKGROUNDS[:4])
        canvas = Image.new("RGBA", canvas_size, background + (255,))
        scale = rng.uniform(0.5, 0.85) * min(canvas_size) / max(icon.size)
        icon = icon.resize(
            (max(8, int(icon.width * scale)), max(8, int(icon.height * scale))), Image.Resampling.LANCZOS
        )
        canvas.alpha_composite(
            icon, ((canvas_size[0] - icon.width) // 2, (canvas_size[1] - icon.height) // 2)
        )
        out.append((f"icon:{path.name}", canvas.convert("RGB")))
    return out
