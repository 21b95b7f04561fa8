"""Photo-like JPEGs, and a corpus of them cached on disk.

Synthetic scenes (``pipeline.synthetic.scenes``) drawn flat compress to a few KB; blur, uneven
lighting, a mid-frequency texture and sensor-like grain give them photo-like file sizes (tens to
hundreds of KB, a few bits per pixel), which is what decode-bound benchmarks need. Every n-th
picture can instead start from one of scikit-image's bundled photographs (``testkit``), cropped
and resized. The same ``(index, seed, spec)`` always gives the same bytes.
"""

from __future__ import annotations

import functools
import io
import json
import logging
import math
import multiprocessing
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageChops, ImageFilter

log = logging.getLogger(__name__)

GENERATOR_VERSION = 2  # bump when the pictures change, so cached corpora are rebuilt
GRAIN_SIGMAS = (3, 5, 7)
SCENE = "synthetic scene"
PHOTO = "sample photo"


@dataclass(frozen=True)
class PhotoSpec:
    """Sizes, sources and JPEG qualities of the pictures."""

    long_side: tuple[int, int] = (400, 2000)  # pixels, uniform
    max_aspect: float = 2.0  # long / short side, log-uniform in 1/max .. max
    min_short_side: int = 200
    photo_every: int = 0  # every n-th picture (index % n == 0) from a bundled photograph; 0: none
    quality: tuple[int, int] = (80, 92)  # JPEG quality, uniform

    def __post_init__(self) -> None:
        if not 8 <= self.long_side[0] <= self.long_side[1]:
            raise ValueError(f"long_side must be an increasing range from 8 px, got {self.long_side}")
        if self.max_aspect < 1 or self.min_short_side < 1 or self.photo_every < 0:
            raise ValueError(f"invalid photo spec {self}")
        if not 1 <= self.quality[0] <= self.quality[1] <= 100:
            raise ValueError(f"quality must be an increasing range in 1..100, got {self.quality}")


@dataclass(frozen=True)
class Photo:
    """One generated JPEG and what it shows."""

    data: bytes
    caption: str
    source: str  # SCENE or PHOTO
    width: int
    height: int


@functools.cache
def _grain(sigma: int, side: int) -> Image.Image:
    """A ``side`` x ``side`` grain image (mean 128) per process, cropped per picture: far cheaper than
    fresh noise for every picture."""
    rng = np.random.default_rng(12345 + sigma)
    pixels = np.clip(128 + rng.normal(0, sigma, (side, side, 3)), 0, 255)
    return Image.fromarray(pixels.astype(np.uint8))


@functools.cache
def sample_photos() -> tuple[tuple[str, Image.Image], ...]:
    """scikit-image's bundled photographs of at least 256 px a side (no download), by name."""
    from testkit.transforms import bundled_photos

    return tuple((name, image) for name, image in bundled_photos().items() if min(image.size) >= 256)


def _size(rng: random.Random, spec: PhotoSpec) -> tuple[int, int]:
    long_side = rng.randint(*spec.long_side)
    aspect = math.exp(rng.uniform(-1.0, 1.0) * math.log(spec.max_aspect))
    short = max(min(spec.min_short_side, long_side), round(long_side / max(aspect, 1 / aspect)))
    return (long_side, short) if aspect >= 1 else (short, long_side)


def make_photo(index: int, seed: int, spec: PhotoSpec = PhotoSpec()) -> Photo:
    """Picture ``index`` of the series ``seed``: deterministic, JPEG, sized as ``spec`` says."""
    from pipeline.synthetic.scenes import random_scene, render

    rng = random.Random(seed * 1_000_003 + index)
    nrng = np.random.default_rng(seed * 1_000_003 + index)
    width, height = _size(rng, spec)
    if spec.photo_every and index % spec.photo_every == 0:
        photos = sample_photos()
        name, photo = photos[(index // spec.photo_every) % len(photos)]
        w, h = photo.size
        cw, ch = round(w * rng.uniform(0.6, 1.0)), round(h * rng.uniform(0.6, 1.0))
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        image = photo.crop((x, y, x + cw, y + ch)).resize((width, height), Image.Resampling.BICUBIC)
        source, caption = PHOTO, f"a photograph ({name})"
    else:
        scene = random_scene(rng)
        image = render(scene, (width, height), rng)
        image = image.filter(ImageFilter.BoxBlur(rng.uniform(0.5, 2.0)))
        light = nrng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        image = Image.blend(
            image, Image.fromarray(light).resize((width, height), Image.Resampling.BICUBIC), 0.3
        )
        texture = nrng.integers(96, 160, (max(2, height // 24), max(2, width // 24), 3), dtype=np.uint8)
        texture_image = Image.fromarray(texture).resize((width, height), Image.Resampling.BILINEAR)
        image = ImageChops.add(image, texture_image, 1.0, -128)
        source, caption = SCENE, scene.caption
    # Sensor-like grain: without it, drawn or enlarged pictures compress far better than photos.
    side = spec.long_side[1]
    x, y = rng.randint(0, side - width), rng.randint(0, side - height)
    grain = _grain(rng.choice(GRAIN_SIGMAS), side).crop((x, y, x + width, y + height))
    image = ImageChops.add(image.convert("RGB"), grain, 1.0, -128)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=rng.randint(*spec.quality))
    return Photo(out.getvalue(), caption, source, width, height)


# --------------------------------------------------------------------------- cached corpus


@dataclass(frozen=True)
class CorpusEntry:
    """One picture of a cached corpus."""

    index: int
    path: Path
    caption: str
    source: str
    width: int
    height: int
    bytes: int

    @property
    def name(self) -> str:
        """The file name, also its URL path under ``images/`` when the corpus folder is served."""
        return self.path.name

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1e6


def image_name(index: int) -> str:
    """File name of picture ``index`` in a corpus's ``images/`` folder."""
    return f"{index:06d}.jpg"


def _generate(job: tuple[int, int, PhotoSpec, str]) -> dict[str, Any]:
    index, seed, spec, folder = job
    photo = make_photo(index, seed, spec)
    path = Path(folder) / image_name(index)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(photo.data)
    tmp.replace(path)
    return {
        "index": index,
        "caption": photo.caption,
        "source": photo.source,
        "width": photo.width,
        "height": photo.height,
        "bytes": len(photo.data),
    }


def load_corpus(
    folder: Path, count: int, seed: int, spec: PhotoSpec, processes: int = 1
) -> list[CorpusEntry]:
    """Pictures 0..count-1 in ``folder/images`` (generated where missing), with their entries.

    ``folder/index.json`` records the generator version, seed, spec and every picture made; a
    rerun generates only what it lacks (asking for more pictures extends the corpus), and a
    changed generator, seed or spec starts it over. ``processes`` > 1 generates with a process
    pool (fork).
    """
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    index_path = folder / "index.json"
    header = {"version": GENERATOR_VERSION, "seed": seed, "spec": json.loads(json.dumps(asdict(spec)))}
    entries: dict[int, dict[str, Any]] = {}
    if index_path.exists():
        saved = json.loads(index_path.read_text())
        if {k: saved.get(k) for k in header} == header:
            entries = {e["index"]: e for e in saved["images"]}
        else:
            log.info("corpus generator, seed or spec changed: regenerating %s", folder)
    missing = [i for i in range(count) if i not in entries or not (images / image_name(i)).exists()]
    if missing:
        log.info("generating %d of %d pictures in %s (%d processes)", len(missing), count, images, processes)
        started = time.monotonic()
        jobs = [(i, seed, spec, str(images)) for i in missing]
        if processes > 1:
            with multiprocessing.get_context("fork").Pool(processes) as pool:
                made = pool.imap_unordered(_generate, jobs, chunksize=16)
                for done, entry in enumerate(made, 1):
                    entries[entry["index"]] = entry
                    if done % 1000 == 0:
                        log.info("  %d/%d pictures (%.0f s)", done, len(missing), time.monotonic() - started)
        else:
            for entry in map(_generate, jobs):
                entries[entry["index"]] = entry
        index_path.write_text(json.dumps({**header, "images": [entries[i] for i in sorted(entries)]}))
        log.info("generated %d pictures in %.0f s", len(missing), time.monotonic() - started)
    chosen = [CorpusEntry(path=images / image_name(i), **entries[i]) for i in range(count)]
    log.info("corpus %s: %s", folder, describe(chosen))
    return chosen


def describe(entries: list[CorpusEntry]) -> dict[str, float]:
    """Count, total MB, JPEG size median/p10/p90 (KB), mean megapixels and bits per pixel."""
    if not entries:
        return {"images": 0}
    sizes = sorted(e.bytes for e in entries)
    return {
        "images": len(entries),
        "megabytes": round(sum(sizes) / 1e6, 1),
        "kb_median": round(sizes[len(sizes) // 2] / 1024, 1),
        "kb_p10": round(sizes[len(sizes) // 10] / 1024, 1),
        "kb_p90": round(sizes[len(sizes) * 9 // 10] / 1024, 1),
        "megapixels_mean": round(sum(e.megapixels for e in entries) / len(entries), 3),
        "bits_per_pixel_mean": round(
            float(np.mean([8 * e.bytes / (e.width * e.height) for e in entries])), 3
        ),
    }
