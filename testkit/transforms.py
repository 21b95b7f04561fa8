"""Near-duplicate edits, and the images dedup quality is measured on.

Three kinds of material, shared by the dedup quality check (``benchmarks/dedup_quality.py``),
its test and the demo:

- :data:`TRANSFORMS`: deterministic edits that turn a benchmark image into the copy that
  reaches a web corpus (resized, recompressed, blurred, recoloured, captioned, cropped,
  greyscaled, mirrored, letterboxed); :func:`plant` applies them;
- hard negatives for pHash: :func:`near_uniform` (flat colours, faint gradients, blank pages,
  where pHash bits are decided by noise) and :func:`photo_texture` (1/f noise with the spectrum
  of natural photographs);
- :func:`bundled_photos`: the real photographs scikit-image ships inside its wheel (no download).
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont

Transform = Callable[[Image.Image], Image.Image]


def _resize_half(image: Image.Image) -> Image.Image:
    return image.resize((max(16, image.width // 2), max(16, image.height // 2)), Image.Resampling.BILINEAR)


def _jpeg(quality: int) -> Transform:
    def apply(image: Image.Image) -> Image.Image:
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, "JPEG", quality=quality)
        with Image.open(buffer) as decoded:
            return decoded.convert("RGB")

    return apply


def _blur(image: Image.Image) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(2))


def _colour_shift(image: Image.Image) -> Image.Image:
    """15% brighter, 30% more saturated, warmer (red up 6%, blue down 10%)."""
    shifted = ImageEnhance.Brightness(ImageEnhance.Color(image.convert("RGB")).enhance(1.3)).enhance(1.15)
    pixels = np.asarray(shifted, dtype=np.float32) * np.array([1.06, 1.0, 0.9], dtype=np.float32)
    return Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8))


def _text_overlay(image: Image.Image) -> Image.Image:
    """A translucent dark band over the bottom 14% with a line of white text, like a watermark."""
    base = image.convert("RGBA")
    band = max(10, round(base.height * 0.14))
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    draw.rectangle([0, base.height - band, base.width, base.height], fill=(0, 0, 0, 150))
    font = ImageFont.load_default(size=max(8, round(band * 0.6)))
    draw.text(
        (max(2, base.width // 30), base.height - band + band * 0.15),
        "© stock-photos.example  BUY NOW",
        fill=(255, 255, 255, 255),
        font=font,
    )
    return Image.alpha_composite(base, layer).convert("RGB")


def centre_crop(image: Image.Image, fraction: float) -> Image.Image:
    """Keep the central ``1 - fraction`` of the width and of the height."""
    width, height = round(image.width * (1 - fraction)), round(image.height * (1 - fraction))
    left, top = (image.width - width) // 2, (image.height - height) // 2
    return image.crop((left, top, left + width, top + height))


def letterbox(
    image: Image.Image, fraction: float = 0.3, colour: tuple[int, int, int] = (0, 0, 0)
) -> Image.Image:
    """Black bars added on the short sides (``fraction`` of that side in all), as video stills and
    re-framed posts have: the picture itself is untouched."""
    width, height = image.size
    if width >= height:
        canvas = Image.new("RGB", (width, round(height * (1 + fraction))), colour)
        canvas.paste(image.convert("RGB"), (0, (canvas.height - height) // 2))
    else:
        canvas = Image.new("RGB", (round(width * (1 + fraction)), height), colour)
        canvas.paste(image.convert("RGB"), ((canvas.width - width) // 2, 0))
    return canvas


def _grayscale(image: Image.Image) -> Image.Image:
    return image.convert("L").convert("RGB")


def _flip(image: Image.Image) -> Image.Image:
    return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)


TRANSFORMS: dict[str, Transform] = {
    "resize_0.5": _resize_half,
    "jpeg_q30": _jpeg(30),
    "blur_r2": _blur,
    "colour_shift": _colour_shift,
    "text_overlay": _text_overlay,
    "crop_5": lambda image: centre_crop(image, 0.05),
    "crop_15": lambda image: centre_crop(image, 0.15),
    "grayscale": _grayscale,
    "flip": _flip,
    "crop_25": lambda image: centre_crop(image, 0.25),
    "letterbox": letterbox,
}
# Edits a benchmark-decontamination step must catch; the others are reported, not required.
MILD = ("resize_0.5", "jpeg_q30", "blur_r2", "colour_shift", "text_overlay")
HARD = ("crop_5", "crop_15", "grayscale", "flip", "crop_25", "letterbox")


def plant(image: Image.Image, names: tuple[str, ...] | None = None) -> dict[str, Image.Image]:
    """Transformed copies of ``image``, one per name in ``names`` (default: all of :data:`TRANSFORMS`)."""
    unknown = sorted(set(names or ()) - set(TRANSFORMS))
    if unknown:
        raise KeyError(f"unknown transforms {unknown}; known: {sorted(TRANSFORMS)}")
    return {name: TRANSFORMS[name](image.convert("RGB")) for name in names or tuple(TRANSFORMS)}


NEAR_UNIFORM_KINDS = ("solid", "flat", "gradient", "page")


def near_uniform(kind: str, rng: random.Random, size: tuple[int, int]) -> Image.Image:
    """A near-uniform image: ``solid`` colour, ``flat`` colour, faint ``gradient`` or blank ``page``.

    ``solid`` is one exact colour (a digital placeholder); the others carry per-pixel Gaussian
    noise (sigma 0.5-4, like a photographed surface): gradients span 2-40 grey levels, pages are
    off-white with faint uneven lighting.
    """
    if kind not in NEAR_UNIFORM_KINDS:
        raise KeyError(f"unknown near-uniform kind {kind!r}; known: {NEAR_UNIFORM_KINDS}")
    width, height = size
    noise = np.random.default_rng(rng.getrandbits(32))
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * x / width + np.sin(angle) * y / height)[..., None]
    if kind in ("solid", "flat"):
        base = np.array([rng.uniform(0, 255) for _ in range(3)], dtype=np.float32)
        pixels = np.broadcast_to(base, (height, width, 3)).copy()
    elif kind == "gradient":
        base = np.array([rng.uniform(20, 235) for _ in range(3)], dtype=np.float32)
        direction = np.array([rng.uniform(0.5, 1.0) for _ in range(3)], dtype=np.float32)
        pixels = base + ramp * direction * rng.uniform(2, 40)
    else:
        paper = np.array([rng.uniform(235, 255)] * 3, dtype=np.float32) - np.array([0, 2, 6]) * rng.random()
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        falloff = np.hypot(x - cx, y - cy) / np.hypot(width, height)
        pixels = paper - (falloff * rng.uniform(0, 15))[..., None]
    if kind != "solid":
        pixels = pixels + noise.normal(0, rng.uniform(0.5, 4), (height, width, 3))
    return Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8))


def photo_texture(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    """Coloured 1/f^beta noise (beta 1.6-2.4, natural photographs are near 2) under uneven light."""
    width, height = size
    noise = np.random.default_rng(rng.getrandbits(32))
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    radius = np.hypot(fx, fy)
    radius[0, 0] = 1.0
    amplitude = radius ** (-rng.uniform(1.6, 2.4) / 2)
    amplitude[0, 0] = 0.0

    def field() -> np.ndarray:
        spectrum = amplitude * (noise.normal(size=radius.shape) + 1j * noise.normal(size=radius.shape))
        values = np.fft.irfft2(spectrum, s=(height, width))
        return values / (values.std() + 1e-9)

    luminance = field()
    chroma = [field() for _ in range(3)]
    colour = np.array([rng.uniform(60, 190) for _ in range(3)])
    contrast = rng.uniform(25, 60)
    y, x = np.mgrid[0:height, 0:width]
    light = 1 + rng.uniform(-0.3, 0.3) * (x / width - 0.5) + rng.uniform(-0.3, 0.3) * (y / height - 0.5)
    pixels = np.stack(
        [(colour[c] + contrast * (luminance + 0.35 * chroma[c])) * light for c in range(3)], axis=-1
    )
    return Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8))


def random_window(image: Image.Image, rng: random.Random, min_side: float, max_side: float) -> Image.Image:
    """A crop whose sides are ``min_side``-``max_side`` of the image's, at a random place."""
    width = max(8, round(image.width * rng.uniform(min_side, max_side)))
    height = max(8, round(image.height * rng.uniform(min_side, max_side)))
    left = rng.randint(0, image.width - width)
    top = rng.randint(0, image.height - height)
    return image.crop((left, top, left + width, top + height))


# scikit-image sample images that are inside its wheel. Left out: ``cat`` (the same picture as
# ``chelsea``), the right half of ``stereo_motorcycle`` (a near-duplicate of the left one),
# ``lfw_subset`` (25x25 faces) and every image its data module would download.
_BUNDLED = (
    "astronaut",
    "brick",
    "camera",
    "cell",
    "chelsea",
    "clock",
    "coffee",
    "coins",
    "colorwheel",
    "grass",
    "gravel",
    "horse",
    "hubble_deep_field",
    "immunohistochemistry",
    "logo",
    "microaneurysms",
    "moon",
    "page",
    "retina",
    "rocket",
    "shepp_logan_phantom",
    "text",
    "motorcycle",
)


def bundled_photos() -> dict[str, Image.Image]:
    """scikit-image's bundled sample images as RGB images, by name (needs the ``dev`` extra).

    Only images shipped inside the scikit-image wheel are used, so this never touches the network.
    """
    import skimage.data

    photos = {}
    for name in _BUNDLED:
        loaded = (
            skimage.data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(skimage.data, name)()
        )
        pixels = np.asarray(loaded)
        if pixels.dtype != np.uint8:  # boolean masks and 0-1 float images
            pixels = (np.clip(pixels.astype(np.float64), 0, 1) * 255 + 0.5).astype(np.uint8)
        image = Image.fromarray(pixels)
        if image.mode == "RGBA":
            white = Image.new("RGBA", image.size, (255, 255, 255, 255))
            image = Image.alpha_composite(white, image)
        photos[name] = image.convert("RGB")
    return photos
