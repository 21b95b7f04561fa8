"""Dedup quality at the default thresholds, on a small version of benchmarks/dedup_quality.py.

Benchmark images (scikit-image's bundled photographs, synthetic scenes, near-uniform images)
are hashed the way the dedup job hashes benchmarks; their edited copies and distinct pictures
go through the download job's ``process_image`` and the features the dedup job reads back from
the stored JPEG. A pair matches when the pHash distance is within the chosen maximum distance (or
the centre hashes are within the centre distance) and the job's ComplexityGuard, at the chosen
thresholds, accepts it.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass

import pytest
from PIL import Image

from pipeline.dedup.benchmark_hashes import hash_image
from pipeline.dedup.centre import centre_phash
from pipeline.dedup.complexity import (
    DEFAULT_MAX_SIGNATURE_DISTANCE,
    DEFAULT_MIN_COMPLEXITY,
    colour_signature,
    complexity,
)
from pipeline.dedup.guard import ComplexityGuard, ImageFeatures
from pipeline.dedup.options import DEFAULT_CENTRE_MAX_DISTANCE, DEFAULT_MAX_DISTANCE
from pipeline.image import ImageOptions, process_image
from pipeline.image.phash import from_signed64
from pipeline.synthetic.scenes import random_scene, render
from testkit.transforms import (
    MILD,
    NEAR_UNIFORM_KINDS,
    bundled_photos,
    near_uniform,
    photo_texture,
    plant,
    random_window,
)

# The job's defaults, chosen by benchmarks/dedup_quality.py (docs/benchmarks.md, "Dedup quality").
MAX_DISTANCE = DEFAULT_MAX_DISTANCE
MAX_SIGNATURE_DISTANCE = DEFAULT_MAX_SIGNATURE_DISTANCE
OPTIONS = ImageOptions()
GUARD = ComplexityGuard(DEFAULT_MIN_COMPLEXITY, MAX_SIGNATURE_DISTANCE)


@dataclass(frozen=True)
class Hashed:
    """What the dedup job knows about one image."""

    group: str
    source: str
    phash: int
    phash_flipped: int | None
    phash_centre: int
    features: ImageFeatures


def _served(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _benchmark(group: str, source: str, image: Image.Image) -> Hashed:
    row = hash_image(_served(image), OPTIONS)
    features = ImageFeatures.from_bytes(row["complexity"], row["colour_signature"])
    return Hashed(
        group,
        source,
        from_signed64(row["phash"]),
        from_signed64(row["phash_flipped"]),
        from_signed64(row["phash_centre"]),
        features,
    )


def _corpus(group: str, source: str, image: Image.Image) -> Hashed:
    processed = process_image(_served(image), OPTIONS)
    with Image.open(io.BytesIO(processed.data)) as stored:
        stored.load()
        features = ImageFeatures(
            complexity(stored, OPTIONS.border_color), colour_signature(stored, OPTIONS.border_color)
        )
        centre = centre_phash(stored.convert("RGB"), OPTIONS.border_color)
    return Hashed(group, source, processed.phash, None, centre, features)


def _matches(bench: Hashed, corpus: Hashed, flip_invariant: bool = False, centre: bool = True) -> bool:
    hashes = [bench.phash] + (
        [bench.phash_flipped] if flip_invariant and bench.phash_flipped is not None else []
    )
    close = min(bin(h ^ corpus.phash).count("1") for h in hashes) <= MAX_DISTANCE
    if centre:
        close |= bin(bench.phash_centre ^ corpus.phash_centre).count("1") <= DEFAULT_CENTRE_MAX_DISTANCE
    return close and GUARD.accepts(bench.features, corpus.features)


def _size(rng: random.Random) -> tuple[int, int]:
    width = rng.randint(256, 640)
    return width, max(128, min(640, int(width / rng.uniform(0.6, 1.6))))


@dataclass
class World:
    benchmark: list[Hashed]
    copies: dict[str, list[Hashed]]  # edit -> one copy per benchmark image, same order
    distinct: list[Hashed]


@pytest.fixture(scope="module")
def world() -> World:
    photos = bundled_photos()
    rng = random.Random(21)
    originals = [("photo", f"photo:{name}", image) for name, image in photos.items()]
    for _ in range(30):
        scene = random_scene(rng)
        originals.append(("scene", f"scene:{scene}", render(scene, _size(rng), rng)))
    for kind in NEAR_UNIFORM_KINDS:
        originals += [
            ("near_uniform", f"uniform:{kind}{i}", near_uniform(kind, rng, _size(rng))) for i in range(2)
        ]
    benchmark = [_benchmark(*item) for item in originals]
    edits = (*MILD, "flip")
    copies: dict[str, list[Hashed]] = {name: [] for name in edits}
    for group, source, image in originals:
        for name, copy in plant(image, edits).items():
            copies[name].append(_corpus(group, source, copy))

    other = random.Random(22)
    distinct = []
    for _ in range(150):
        scene = random_scene(other)
        distinct.append(_corpus("scene", f"scene:{scene}", render(scene, _size(other), other)))
    names = sorted(photos)
    for i in range(69):
        name = names[i % len(names)]
        distinct.append(_corpus("photo", f"photo:{name}", random_window(photos[name], other, 0.25, 0.5)))
    distinct += [_corpus("texture", f"texture:{i}", photo_texture(other, _size(other))) for i in range(40)]
    for i in range(60):
        kind = NEAR_UNIFORM_KINDS[i % len(NEAR_UNIFORM_KINDS)]
        distinct.append(_corpus("near_uniform", f"uniform:d{i}", near_uniform(kind, other, _size(other))))
    return World(benchmark, copies, distinct)


def _recall(
    world: World, edit: str, groups: tuple[str, ...], flip_invariant: bool = False, centre: bool = True
) -> float:
    found = [
        _matches(b, c, flip_invariant, centre)
        for b, c in zip(world.benchmark, world.copies[edit], strict=True)
        if b.group in groups
    ]
    return sum(found) / len(found)


@pytest.mark.slow
@pytest.mark.parametrize("edit", MILD)
def test_mild_edits_of_photos_and_scenes_are_found(world: World, edit: str) -> None:
    assert _recall(world, edit, ("photo",)) >= 0.95
    assert _recall(world, edit, ("scene",)) >= 0.95


@pytest.mark.slow
def test_text_overlays_are_found_by_the_centre_hash(world: World) -> None:
    # A dark band with text over 14% of the picture moves the whole-picture pHash much more than
    # the other mild edits; the centre hash does not see the band (docs/benchmarks.md).
    assert _recall(world, "text_overlay", ("scene",), centre=False) < 0.95
    assert _recall(world, "text_overlay", ("photo", "scene")) >= 0.95


@pytest.mark.slow
def test_mirrored_copies_need_flip_invariant_matching(world: World) -> None:
    assert _recall(world, "flip", ("photo", "scene")) <= 0.05
    assert _recall(world, "flip", ("photo", "scene"), flip_invariant=True) >= 0.95


@pytest.mark.slow
def test_distinct_pictures_rarely_match(world: World) -> None:
    pairs = [(b, c) for b in world.benchmark for c in world.distinct if b.source != c.source]
    false = [(b, c) for b, c in pairs if _matches(b, c)]
    assert len(pairs) > 15_000
    assert len(false) / len(pairs) <= 0.001
    # Photographs and textures: never. The few false pairs, as in the full benchmark, are two
    # synthetic scenes with the same layout, or two flat pictures of nearly the same colour (both
    # low-complexity: the colour check let them through).
    assert not [(b.source, c.source) for b, c in false if {"photo", "texture"} & {b.group, c.group}]
    for b, c in false:
        assert b.group == c.group
        if b.group == "near_uniform":
            assert GUARD.is_low(b.features) and GUARD.is_low(c.features)


def test_flat_pictures_of_one_aspect_hash_alike_and_only_the_guard_tells_them_apart() -> None:
    red = _benchmark("near_uniform", "red", Image.new("RGB", (400, 300), (200, 30, 30)))
    blue = _corpus("near_uniform", "blue", Image.new("RGB", (400, 300), (30, 40, 190)))
    red_copy = _corpus("near_uniform", "red", Image.new("RGB", (200, 150), (200, 30, 30)))
    # The border padding alone decides these hashes: identical for both colours.
    assert bin(red.phash ^ blue.phash).count("1") <= MAX_DISTANCE
    assert GUARD.is_low(red.features) and GUARD.is_low(blue.features)
    assert not _matches(red, blue)
    assert _matches(red, red_copy)
