"""Quality check of benchmark decontamination: pHash candidates and their verification (issues 6, 16).

    .venv/bin/python benchmarks/dedup_quality.py [--distinct-scenes 3000] [--seed 0] [--reuse]

1. Benchmark set: scikit-image's bundled photographs (whole, and large windows of them),
   synthetic scenes, flat graphics (``testkit.graphics``: Pillow-drawn icons, emoji, logos, flags,
   gradients, and Debian's Adwaita icons when installed) and near-uniform images (solid colours,
   flat colours with noise, faint gradients, blank pages).
2. Planted copies: every benchmark image through each edit of
   ``testkit.transforms.TRANSFORMS`` (resize 0.5x, JPEG q30, blur r2, colour shift, text band,
   5%, 15% and 25% crop, greyscale, mirror, letterbox).
3. Distinct corpus: thousands of other pictures (synthetic scenes of another seed, small windows
   of the photographs, 1/f photo-like textures, near-uniform images, flat graphics and icons) and
   the hard negatives: other pictures of the benchmark's own layouts (a scene with another object
   colour, shape or background; a graphic in other colours). Every (benchmark, distinct) pair is
   a false-positive opportunity, except pairs cut from the same photograph or drawn from the same
   description (the same picture up to jitter or size), which are left out and counted.
4. Every file is served as JPEG q90 and goes through the job's code paths: the corpus side through
   ``process_image`` (its pHash is what the raw shard records) and ``sample_features`` on the
   stored JPEG (centre hash, complexity, colour signature, verification thumbnail and, for a
   picture with letterbox bars, the thumbnail inside them, as the dedup job caches them), the
   benchmark side through ``hash_image`` as the dedup job hashes benchmarks.
5. Sweeps the Hamming distance d = 0..16 and the low-complexity guard (min complexity x max
   signature distance, complexity of the picture without its border as the job computes it, and
   of the whole padded image for comparison), with and without flip-invariant matching, and picks
   the hash defaults (see :func:`choose`); then the verification thumbnail threshold on that hash
   rule (:func:`choose_thumbnail`). Reports recall per edit and image group, precision, FPR on
   distinct pairs and the share of distinct images dropped, per signal (hash only, hash +
   thumbnail), and prints the tables.
6. The embedding signal (``jobs/dedup.py --embeddings``, issue 16), per model of
   ``--embedding-models``: corpusforge-tiny randomly initialised (``--model-seed``) and trained as
   the demo trains its scorer (no pretrained weights can be downloaded). The benchmark side
   through the job's ``query_images`` (the stored image with its padding, its mirror, the stored
   15% centre crop; float16 as the job keeps them), the corpus side (copies and distinct images)
   as the score job embeds the stored JPEG (``_preprocess``, ``encode_image(normalize=True)``,
   float16 and normalised again as the search reads them); the job's exact search (at most
   MAX_CANDIDATES_PER_SAMPLE benchmark images per sample; a pair the hashes already found is not
   added again), and every candidate verified by the job's ``Verifier`` in both orientations, as
   ``search_shard`` emits it (the benchmark side as is and mirrored): a pair is accepted when
   either is. Signal "hash + embedding + thumbnail": the union of the verified hash and embedding
   candidates; swept over ``--embedding-min-similarity`` (:data:`SIMILARITIES`,
   :func:`choose_similarity`).

Results: benchmarks/_work/dedup_quality.json; recorded in docs/benchmarks.md ("Dedup quality").
The measurement (the slow part) is kept in benchmarks/_work/dedup_quality_measured.pkl, the
embeddings in benchmarks/_work/dedup_quality_embeddings.pkl and the models in
benchmarks/_work/dedup_quality_scorers/; ``--reuse`` sweeps again on them. When the verifier's code
(pipeline/dedup/verify.py, docstrings aside) changed since the measurement, ``--reuse`` first
computes every pair's thumbnail distances again (about 13 minutes on 2 busy cores), kept in
benchmarks/_work/dedup_quality_reverified.pkl for the next run. ``--render-dropped PNG`` draws
every distinct image the defaults drop beside the benchmark image it matched
(docs/images/dedup_distinct_dropped.png).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import io
import json
import logging
import math
import pickle
import random
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from harness.paths import WORK, shown
from harness.table import markdown_table, pct
from PIL import Image
from tqdm import tqdm

from pipeline.dedup import verify as verify_module
from pipeline.dedup.benchmark_hashes import hash_image
from pipeline.dedup.complexity import DEFAULT_MAX_SIGNATURE_DISTANCE, DEFAULT_MIN_COMPLEXITY
from pipeline.dedup.embeddings import (
    MAX_CANDIDATES_PER_SAMPLE,
    QUERIES,
    SEARCH_BLOCK,
    query_images,
)
from pipeline.dedup.features import sample_features
from pipeline.dedup.guard import ComplexityGuard, ImageFeatures
from pipeline.dedup.hamming import hamming_distance
from pipeline.dedup.layout import DEFAULT_MIN_SIMILARITY as DEFAULT_LAYOUT_MIN_SIMILARITY
from pipeline.dedup.layout import QUERIES as LAYOUT_QUERIES
from pipeline.dedup.layout import benchmark_queries as layout_queries
from pipeline.dedup.layout import drawn as layout_drawn
from pipeline.dedup.layout import sample_vectors as layout_vectors
from pipeline.dedup.options import DEFAULT_EMBEDDING_MIN_SIMILARITY
from pipeline.dedup.verify import (
    THUMBNAIL_SIZE,
    ZOOMS,
    Verifier,
    as_array,
    mirrored,
    split_zoomed,
    thumbnail_distances,
)
from pipeline.image import ImageOptions, process_image
from pipeline.image.phash import from_signed64, thumbnail
from pipeline.image.process import stored_image
from pipeline.logs import setup_logging
from pipeline.score.model import load_model, register_configs
from pipeline.score.shard_scorer import _preprocess
from pipeline.synthetic.scenes import BACKGROUNDS, COLOURS, SHAPES, Scene, random_scene, render
from pipeline.train.contrastive import TrainOptions, save_checkpoint, train_clip
from testkit.graphics import Graphic, draw, random_graphic, recoloured, system_icons
from testkit.transforms import (
    MILD,
    NEAR_UNIFORM_KINDS,
    TRANSFORMS,
    bundled_photos,
    near_uniform,
    photo_texture,
    random_window,
)

log = logging.getLogger("benchmarks.dedup_quality")
RESULTS = WORK / "dedup_quality.json"
SERVED_QUALITY = 90  # benchmark files and web copies are JPEG q90, like the synthetic world's
MAX_D = 16
# Bump when what measure() computes changes, so --reuse does not pick up an old measurement.
CACHE_VERSION = 4
# Centre-hash distances tried (-1: no centre hash); pairs beyond MAX_CENTRE_D never match by centre.
CENTRE_DISTANCES = (-1, 4, 6, 8)
MAX_CENTRE_D = max(CENTRE_DISTANCES)
COLOUR_KEEPING = ("resize_0.5", "jpeg_q30", "blur_r2")  # edits that leave a flat picture's colour
TARGET_RECALL = 0.95
TARGET_FPR = 0.001
# The guard exists for near-uniform pictures: on photographs and scenes it may cost no recall at
# all, on any edit, compared with no guard at the same d.
GUARD_RECALL_COST = 0.0
# FPRs within 10% of the lowest are a few pairs apart: ties, broken towards the wider guard.
FPR_TIE = 1.1
MIN_COMPLEXITIES = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 15.0, 20.0, 25.0, 30.0, math.inf)
MAX_SIGNATURES = (2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 15.0, 18.0, 20.0, 22.0, 25.0, 30.0, 40.0)
KINDS = ("complexity", "whole_image")  # the job's (content without border), the padded image's
BENCH_GROUPS = ("photo", "scene", "graphic", "near_uniform")
CORPUS_GROUPS = ("photo", "scene", "texture", "graphic", "near_uniform")
BUCKET_EDGES = (0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 15.0, 20.0, 25.0, 30.0, math.inf)


@dataclass(frozen=True)
class Sets:
    """How many pictures of each kind the benchmark set and the distinct corpus hold."""

    seed: int
    benchmark_windows: int
    benchmark_scenes: int
    benchmark_uniform: int
    benchmark_graphics: int
    benchmark_icons: int
    distinct_scenes: int
    distinct_crops: int
    distinct_textures: int
    distinct_uniform: int
    distinct_graphics: int
    distinct_icons: int
    variants: int

    @property
    def distinct_count(self) -> int:
        """Pictures of the distinct corpus (icons: at most; the theme may hold fewer or be missing)."""
        return (
            self.distinct_scenes
            + self.distinct_crops
            + self.distinct_textures
            + self.distinct_uniform
            + self.distinct_graphics
            + self.distinct_icons
            + self.variants * (self.benchmark_scenes + self.benchmark_graphics)
        )


@dataclass
class Item:
    """One picture of the benchmark set or of the distinct corpus."""

    group: str  # photo, scene, graphic, near_uniform, texture
    source: str  # pairs with the same source are not counted as distinct
    image: Image.Image = field(repr=False)
    drawn: Scene | Graphic | None = field(default=None, repr=False)  # what was drawn, for variants


@dataclass
class FeatureTable:
    """What the dedup job knows of each image, as columns."""

    phash: np.ndarray  # uint64
    phash_flipped: np.ndarray  # uint64 (benchmark side only; the corpus side repeats phash)
    phash_centre: np.ndarray  # uint64, pHash of the picture's centre (pipeline.dedup.centre)
    complexity: np.ndarray  # the job's: thumbnail std of the picture without border padding
    whole_image: np.ndarray  # thumbnail std of the whole stored (padded) image
    signature: np.ndarray  # (n, 8, 8, 3) uint8, the job's colour signature
    thumbnail: np.ndarray  # (n, pixels, 3) float32, the verification thumbnail (pipeline.dedup.verify)
    zoomed: list[np.ndarray] | None  # benchmark side: per zoom of verify.ZOOMS, (n, pixels, 3)
    barred: np.ndarray  # bool: the picture has letterbox or pillarbox bars (pipeline.dedup.bars)
    inside: np.ndarray  # (n, pixels, 3): the thumbnail inside the bars, or the thumbnail without
    groups: np.ndarray
    sources: np.ndarray


# --------------------------------------------------------------------------- image sets


def _size(rng: random.Random, min_side: int = 256, max_side: int = 640) -> tuple[int, int]:
    # The synthetic world's size distribution (aspect 0.6-1.6).
    width = rng.randint(min_side, max_side)
    aspect = rng.uniform(0.6, 1.6)
    return width, max(min_side // 2, min(max_side, int(width / aspect)))


def benchmark_set(sets: Sets, photos: dict[str, Image.Image]) -> list[Item]:
    """Photographs and large windows of them, synthetic scenes, flat graphics, icons, near-uniform images."""
    rng = random.Random(sets.seed)
    items = [Item("photo", f"photo:{name}", image) for name, image in photos.items()]
    big = [name for name, image in photos.items() if min(image.size) >= 300]
    for i in range(sets.benchmark_windows):
        name = big[i % len(big)]
        items.append(Item("photo", f"photo:{name}", random_window(photos[name], rng, 0.5, 0.8)))
    for _ in range(sets.benchmark_scenes):
        scene = random_scene(rng)
        items.append(Item("scene", f"scene:{scene}", render(scene, _size(rng), rng), scene))
    for i in range(sets.benchmark_uniform):
        kind = NEAR_UNIFORM_KINDS[i % len(NEAR_UNIFORM_KINDS)]
        items.append(Item("near_uniform", f"uniform:b{i}", near_uniform(kind, rng, _size(rng, 200, 640))))
    for _ in range(sets.benchmark_graphics):
        graphic = random_graphic(rng)
        items.append(Item("graphic", graphic.source, draw(graphic), graphic))
    half = sets.benchmark_icons // 2
    items += [
        Item("graphic", key, image) for key, image in system_icons(rng, half, sets.benchmark_icons - half)
    ]
    return items


def scene_variant(scene: Scene, rng: random.Random) -> Scene:
    """The same layout with one thing changed: the objects' colour or shape, or the background."""
    change = rng.choice(("colour", "shape", "background"))
    if change == "colour":
        return replace(scene, colour=rng.choice([c for c in COLOURS if c != scene.colour]))
    if change == "shape":
        return replace(scene, shape=rng.choice([c for c in SHAPES if c != scene.shape]))
    return replace(scene, background=rng.choice([c for c in BACKGROUNDS if c != scene.background]))


def distinct_set(sets: Sets, photos: dict[str, Image.Image], bench: list[Item]) -> Iterator[Item]:
    """Other pictures, one at a time: scenes of another seed, small photo windows, textures, flats,
    flat graphics and icons, and the hard negatives: other pictures of the benchmark's layouts
    (a scene with another object colour, shape or background; a graphic in other colours)."""
    rng = random.Random(10_000 + sets.seed)
    for _ in range(sets.distinct_scenes):
        scene = random_scene(rng)
        yield Item("scene", f"scene:{scene}", render(scene, _size(rng), rng))
    names = sorted(photos)
    for i in range(sets.distinct_crops):
        name = names[i % len(names)]
        yield Item("photo", f"photo:{name}", random_window(photos[name], rng, 0.25, 0.5))
    for i in range(sets.distinct_textures):
        yield Item("texture", f"texture:{i}", photo_texture(rng, _size(rng, 200, 512)))
    for i in range(sets.distinct_uniform):
        kind = NEAR_UNIFORM_KINDS[i % len(NEAR_UNIFORM_KINDS)]
        yield Item("near_uniform", f"uniform:d{i}", near_uniform(kind, rng, _size(rng, 200, 640)))
    for _ in range(sets.distinct_graphics):
        graphic = random_graphic(rng)
        yield Item("graphic", graphic.source, draw(graphic))
    half = sets.distinct_icons // 2
    for key, image in system_icons(random.Random(20_000 + sets.seed), half, sets.distinct_icons - half):
        yield Item("graphic", key, image)
    for item in bench:
        for _ in range(sets.variants):
            if isinstance(item.drawn, Scene):
                scene = scene_variant(item.drawn, rng)
                yield Item("scene", f"scene:{scene}", render(scene, _size(rng), rng))
            elif isinstance(item.drawn, Graphic):
                graphic = recoloured(item.drawn, rng)
                yield Item("graphic", graphic.source, draw(graphic))


# --------------------------------------------------------------------------- features


def served(image: Image.Image) -> bytes:
    """The file a crawler would fetch: JPEG q90."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=SERVED_QUALITY)
    return buffer.getvalue()


def _whole_image(image: Image.Image) -> float:
    return float(np.asarray(thumbnail(image), dtype=np.float64).std())


Row = tuple[int, int, int, float, float, np.ndarray, bytes, bytes | None, bytes | None]


def benchmark_row(data: bytes, options: ImageOptions) -> Row:
    """What the dedup job records for a benchmark file (its own ``hash_image``), and the whole-image
    complexity of the picture it would have stored, for comparison."""
    row = hash_image(data, options)
    stored, _ = stored_image(data, options)
    return (
        from_signed64(row["phash"]),
        from_signed64(row["phash_flipped"]),
        from_signed64(row["phash_centre"]),
        row["complexity"],
        _whole_image(stored),
        np.frombuffer(row["colour_signature"], dtype=np.uint8).reshape(8, 8, 3),
        row["thumbnail"],
        row["thumbnail_zoomed"],
        row["thumbnail_unbarred"],
    )


def corpus_row(data: bytes, options: ImageOptions) -> Row:
    """The pHash the download job stores, and the features the dedup job computes from the stored
    JPEG (its own ``sample_features``, with the original size the raw shard records)."""
    processed = process_image(data, options)
    size = (processed.original_width, processed.original_height)
    cached = sample_features(processed.data, size, options)
    with Image.open(io.BytesIO(processed.data)) as decoded:
        stored = decoded.convert("RGB")
    return (
        processed.phash,
        processed.phash,
        from_signed64(cached["phash_centre"]),
        cached["complexity"],
        _whole_image(stored),
        np.frombuffer(cached["colour_signature"], dtype=np.uint8).reshape(8, 8, 3),
        cached["thumbnail"],
        None,
        cached["thumbnail_unbarred"],
    )


def featurize(
    items: Iterator[Item] | list[Item], total: int, side: str, options: ImageOptions
) -> FeatureTable:
    """Features of every item's served file, through the benchmark or the corpus code path."""
    compute = benchmark_row if side == "benchmark" else corpus_row
    rows, groups, sources = [], [], []
    for item in tqdm(items, total=total, desc=side, unit=" img", mininterval=10):
        rows.append(compute(served(item.image), options))
        groups.append(item.group)
        sources.append(item.source)
    columns = list(zip(*rows, strict=True))
    return FeatureTable(
        phash=np.array(columns[0], dtype=np.uint64),
        phash_flipped=np.array(columns[1], dtype=np.uint64),
        phash_centre=np.array(columns[2], dtype=np.uint64),
        complexity=np.array(columns[3]),
        whole_image=np.array(columns[4]),
        signature=np.stack(columns[5]),
        thumbnail=as_array(list(columns[6])),
        zoomed=None
        if columns[7][0] is None
        else [as_array([split_zoomed(z)[k] for z in columns[7]]) for k in range(len(ZOOMS))],
        barred=np.array([u is not None for u in columns[8]]),
        inside=as_array([t if u is None else u for t, u in zip(columns[6], columns[8], strict=True)]),
        groups=np.array(groups),
        sources=np.array(sources),
    )


# --------------------------------------------------------------------------- pairs and rules


@dataclass(frozen=True)
class Rule:
    """When a (benchmark, corpus) pair is a match.

    pHash distance <= ``max_distance`` (to the benchmark's hash, or with ``flip`` also to its
    mirror's); if either image's complexity (``kind``) is below ``min_complexity``, the colour
    signatures must also be within ``max_signature`` (``min_complexity = inf``: on every match).
    For a match of the mirrored hash, ``mirror_signature`` compares the corpus signature with the
    mirrored benchmark signature (else with the benchmark's own). ``centre >= 0``: a pair whose
    centre hashes are within ``centre`` bits is a pHash match too (the guard applies the same way).
    ``max_thumbnail``: the verification (pipeline.dedup.verify), the thumbnail distance of the pair
    (to the mirrored benchmark thumbnail for a mirrored match) must be within it (inf: off).
    """

    max_distance: int
    min_complexity: float = 0.0
    max_signature: float = math.inf
    kind: str = "complexity"
    flip: bool = False
    mirror_signature: bool = True
    centre: int = -1  # also a match when the centre hashes are within this distance (-1: off)
    max_thumbnail: float = math.inf


@dataclass
class Pairs:
    """Distances of (benchmark, corpus) pairs: pHash to the benchmark and its mirror, signatures."""

    bench: np.ndarray  # benchmark row per pair
    corpus: np.ndarray  # corpus row per pair
    distance: np.ndarray
    distance_flipped: np.ndarray
    distance_centre: np.ndarray
    signature: np.ndarray
    signature_mirrored: np.ndarray  # to the mirrored benchmark signature
    min_complexity: dict[str, np.ndarray]
    thumbnail: np.ndarray  # verification thumbnail distance (share of differing pixels)
    thumbnail_mirrored: np.ndarray  # to the mirrored benchmark thumbnail (inf where not computed)

    def matched(self, rule: Rule) -> np.ndarray:
        """Boolean per pair: does ``rule`` call it a match."""
        trusted = self.min_complexity[rule.kind] >= rule.min_complexity
        near = self.distance <= rule.max_distance
        if rule.centre >= 0:
            near |= self.distance_centre <= rule.centre
        match = (
            near & (trusted | (self.signature <= rule.max_signature)) & (self.thumbnail <= rule.max_thumbnail)
        )
        if rule.flip:
            signature = self.signature_mirrored if rule.mirror_signature else self.signature
            match |= (
                (self.distance_flipped <= rule.max_distance)
                & (trusted | (signature <= rule.max_signature))
                & (self.thumbnail_mirrored <= rule.max_thumbnail)
            )
        return match


def _signature_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise ``signature_distance`` (mean absolute difference) of two (n, 8, 8, 3) stacks."""
    return np.abs(a.astype(np.int16) - b.astype(np.int16)).reshape(len(a), -1).mean(axis=1)


def _thumbnail_distances(a: np.ndarray, b: np.ndarray, batch: int = 2048) -> np.ndarray:
    """``thumbnail_distances`` in batches (memory)."""
    out = [thumbnail_distances(a[i : i + batch], b[i : i + batch]) for i in range(0, len(a), batch)]
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def _verified_distances(
    bench: FeatureTable, b_idx: np.ndarray, corpus: FeatureTable, c_idx: np.ndarray, mirror: bool
) -> np.ndarray:
    """The job's thumbnail distance of each pair: the smallest of the benchmark thumbnail's, its
    central crops' and, where either picture has bars, the pictures' inside them (the Verifier
    tries each only when the ones before are too far: the same verdicts)."""
    if not len(b_idx):
        return np.zeros(0)
    sides = [bench.thumbnail] + (bench.zoomed or [])
    copy = corpus.thumbnail[c_idx]
    best = np.full(len(b_idx), np.inf)
    for side in sides:
        left = mirrored(side[b_idx]) if mirror else side[b_idx]
        best = np.minimum(best, _thumbnail_distances(left, copy))
    barred = np.flatnonzero(bench.barred[b_idx] | corpus.barred[c_idx])
    if len(barred):
        inside = bench.inside[b_idx[barred]]
        left = mirrored(inside) if mirror else inside
        found = _thumbnail_distances(left, corpus.inside[c_idx[barred]])
        best[barred] = np.minimum(best[barred], found)
    return best


def make_pairs(bench: FeatureTable, corpus: FeatureTable, b_idx: np.ndarray, c_idx: np.ndarray) -> Pairs:
    """Pairs (bench[b_idx[k]], corpus[c_idx[k]])."""
    b_sig, c_sig = bench.signature[b_idx], corpus.signature[c_idx]
    distance_flipped = hamming_distance(bench.phash_flipped[b_idx], corpus.phash[c_idx])
    # The mirrored comparison only where a mirrored match is possible at all (a flip within MAX_D).
    mirror = np.flatnonzero(distance_flipped <= MAX_D)
    thumbnail_mirrored = np.full(len(b_idx), np.inf)
    thumbnail_mirrored[mirror] = _verified_distances(bench, b_idx[mirror], corpus, c_idx[mirror], mirror=True)
    return Pairs(
        bench=b_idx,
        corpus=c_idx,
        distance=hamming_distance(bench.phash[b_idx], corpus.phash[c_idx]),
        distance_flipped=distance_flipped,
        distance_centre=hamming_distance(bench.phash_centre[b_idx], corpus.phash_centre[c_idx]),
        signature=_signature_distances(b_sig, c_sig),
        signature_mirrored=_signature_distances(b_sig[:, :, ::-1], c_sig),
        min_complexity={
            kind: np.minimum(getattr(bench, kind)[b_idx], getattr(corpus, kind)[c_idx]) for kind in KINDS
        },
        thumbnail=_verified_distances(bench, b_idx, corpus, c_idx, mirror=False),
        thumbnail_mirrored=thumbnail_mirrored,
    )


# --------------------------------------------------------------------------- measurement


@dataclass
class Measured:
    """Everything the sweeps need."""

    bench: FeatureTable
    corpus: FeatureTable
    copies: dict[str, Pairs]  # per edit: (benchmark i, its copy i)
    copy_tables: dict[str, FeatureTable]  # per edit: the copies' features (row i: copy of benchmark i)
    distinct: Pairs  # distinct pairs within MAX_D of the hash or the mirrored hash; others never match
    distinct_total: int
    distinct_total_without_graphics: int  # pairs where neither picture is a flat graphic
    bench_groups: np.ndarray
    corpus_groups: np.ndarray
    distinct_by_bench_group: dict[str, int]
    distinct_by_corpus_group: dict[str, int]
    distinct_by_bucket: dict[str, np.ndarray]  # kind -> all distinct pairs per BUCKET_EDGES bucket


MEASURED_CACHE = WORK / "dedup_quality_measured.pkl"


def measure_cached(sets: Sets, options: ImageOptions, reuse: bool) -> tuple[Measured, dict[str, Any]]:
    """:func:`measure`, or with ``reuse`` the last measurement of the same sets (a pickle in _work)."""
    key = json.dumps({"sets": asdict(sets), "version": CACHE_VERSION}, sort_keys=True)
    if reuse and MEASURED_CACHE.exists():
        with open(MEASURED_CACHE, "rb") as handle:
            saved_key, measured, setup = pickle.load(handle)
        if saved_key == key:
            log.info("reusing the measurement in %s", shown(MEASURED_CACHE))
            if setup.get("verifier") != _verifier_fingerprint():
                reverify(measured, key)
            return measured, setup
    measured, setup = measure(sets, options)
    setup["verifier"] = _verifier_fingerprint()
    MEASURED_CACHE.parent.mkdir(parents=True, exist_ok=True)
    with open(MEASURED_CACHE, "wb") as handle:
        pickle.dump((key, measured, setup), handle)
    return measured, setup


REVERIFIED_CACHE = WORK / "dedup_quality_reverified.pkl"


def _verifier_fingerprint() -> str:
    """A digest of the verifier's code (its syntax tree without docstrings: comments and docs do not
    change a distance): the saved thumbnail distances are its."""
    tree = ast.parse(Path(verify_module.__file__).read_text())
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
            node.body = body[1:]  # type: ignore[attr-defined]
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()


def reverify(measured: Measured, key: str) -> None:
    """Recompute every pair's thumbnail distances with the verifier as it is now (``--reuse`` of a
    measurement made with another verifier), from the thumbnails in the measurement. Saved apart
    (REVERIFIED_CACHE, keyed by the verifier's source), so the measurement itself stays the one
    the code that made it reads."""
    fingerprint = _verifier_fingerprint()
    saved: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
    if REVERIFIED_CACHE.exists():
        with open(REVERIFIED_CACHE, "rb") as handle:
            saved_key, saved = pickle.load(handle)
        if saved_key != (key, fingerprint):
            saved = None
    if saved is None:
        log.info("the verifier changed since the measurement: computing the thumbnail distances again")
        index = np.arange(len(measured.bench_groups))
        saved = {}
        for name, table in measured.copy_tables.items():
            pairs = make_pairs(measured.bench, table, index, index)
            saved[name] = (pairs.thumbnail, pairs.thumbnail_mirrored)
        distinct = measured.distinct
        mirror = np.isfinite(distinct.thumbnail_mirrored)
        bench, rows, samples = measured.bench, distinct.bench, distinct.corpus
        again = np.full(len(rows), np.inf)
        corpus = measured.corpus
        again[mirror] = _verified_distances(bench, rows[mirror], corpus, samples[mirror], mirror=True)
        saved["distinct"] = (_verified_distances(bench, rows, corpus, samples, mirror=False), again)
        with open(REVERIFIED_CACHE, "wb") as handle:
            pickle.dump(((key, fingerprint), saved), handle)
    for name, pairs in (*measured.copies.items(), ("distinct", measured.distinct)):
        pairs.thumbnail, pairs.thumbnail_mirrored = saved[name]


def measure(sets: Sets, options: ImageOptions) -> tuple[Measured, dict[str, Any]]:
    """Build both image sets, hash them through the job's code paths and pair them up."""
    photos = bundled_photos()
    bench_items = benchmark_set(sets, photos)
    n = len(bench_items)
    bench = featurize(bench_items, n, "benchmark", options)
    index = np.arange(n)
    copies, copy_tables = {}, {}
    for name, transform in TRANSFORMS.items():
        planted = [Item(b.group, b.source, transform(b.image.convert("RGB"))) for b in bench_items]
        copy_tables[name] = featurize(planted, n, f"copies {name}", options)
        copies[name] = make_pairs(bench, copy_tables[name], index, index)
    corpus = featurize(
        distinct_set(sets, photos, bench_items), sets.distinct_count, "distinct corpus", options
    )

    same_source = bench.sources[:, None] == corpus.sources[None, :]
    near = (
        (hamming_distance(bench.phash[:, None], corpus.phash[None, :]) <= MAX_D)
        | (hamming_distance(bench.phash_flipped[:, None], corpus.phash[None, :]) <= MAX_D)
        | (hamming_distance(bench.phash_centre[:, None], corpus.phash_centre[None, :]) <= MAX_CENTRE_D)
    )
    b_idx, c_idx = np.nonzero(near & ~same_source)
    buckets = {}
    for kind in KINDS:
        cmin = np.minimum(getattr(bench, kind)[:, None], getattr(corpus, kind)[None, :])[~same_source]
        buckets[kind] = np.histogram(cmin, bins=[*BUCKET_EDGES[:-1], 1e9])[0]
    measured = Measured(
        bench=bench,
        corpus=corpus,
        copies=copies,
        copy_tables=copy_tables,
        distinct=make_pairs(bench, corpus, b_idx, c_idx),
        distinct_total=int((~same_source).sum()),
        distinct_total_without_graphics=int(
            (~same_source)[bench.groups != "graphic"][:, corpus.groups != "graphic"].sum()
        ),
        bench_groups=bench.groups,
        corpus_groups=corpus.groups,
        distinct_by_bench_group={g: int((~same_source[bench.groups == g]).sum()) for g in BENCH_GROUPS},
        distinct_by_corpus_group={g: int((~same_source[:, corpus.groups == g]).sum()) for g in CORPUS_GROUPS},
        distinct_by_bucket=buckets,
    )
    percentiles = {}
    for side, table, names in (("benchmark", bench, BENCH_GROUPS), ("distinct", corpus, CORPUS_GROUPS)):
        for g in names:
            for kind in KINDS:
                values = np.percentile(getattr(table, kind)[table.groups == g], (10, 50, 90))
                percentiles[f"{side} {g} {kind}"] = [round(float(v), 1) for v in values]
    setup = {
        "benchmark_images": {g: int((bench.groups == g).sum()) for g in BENCH_GROUPS},
        "distinct_images": {g: int((corpus.groups == g).sum()) for g in CORPUS_GROUPS},
        "planted_copies": n * len(TRANSFORMS),
        "distinct_pairs": measured.distinct_total,
        "same_source_pairs_left_out": int(same_source.sum()),
        "photos": sorted(photos),
        "complexity_p10_p50_p90": percentiles,
        "odd_distances_among_candidates": int((measured.distinct.distance % 2 == 1).sum()),
    }
    return measured, setup


# --------------------------------------------------------------------------- evaluation


@dataclass
class Extra:
    """Matches another signal adds to a rule's (the verified embedding candidates): per edit, the
    planted copies it finds; the (benchmark, corpus) distinct pairs it matches."""

    copies: dict[str, np.ndarray]  # edit -> bool per benchmark row
    bench: np.ndarray
    corpus: np.ndarray


@dataclass
class Denominators:
    """Distinct pairs (same-source pairs left out) of the whole distinct corpus or of a sample of it."""

    images: np.ndarray | None  # the distinct images counted (None: all)
    total: int
    without_graphics: int
    by_bench_group: dict[str, int]
    by_corpus_group: dict[str, int]


def denominators(measured: Measured, images: np.ndarray | None = None) -> Denominators:
    """:class:`Denominators` of all distinct images (the measurement's) or of ``images``."""
    if images is None:
        return Denominators(
            None,
            measured.distinct_total,
            measured.distinct_total_without_graphics,
            measured.distinct_by_bench_group,
            measured.distinct_by_corpus_group,
        )
    other = measured.bench.sources[:, None] != measured.corpus.sources[None, images]
    groups = measured.corpus_groups[images]
    return Denominators(
        images,
        int(other.sum()),
        int(other[measured.bench_groups != "graphic"][:, groups != "graphic"].sum()),
        {g: int(other[measured.bench_groups == g].sum()) for g in BENCH_GROUPS},
        {g: int(other[:, groups == g].sum()) for g in CORPUS_GROUPS},
    )


def evaluate(
    measured: Measured, rule: Rule, extra: Extra | None = None, counted: Denominators | None = None
) -> dict[str, Any]:
    """Recall per edit and benchmark group, false-positive rates, share of distinct corpus images dropped
    (``extra``: matches of another signal, added to the rule's; ``counted``: on a sample of the
    distinct images only, the false matches of the precision scaled up to the whole corpus)."""
    found: dict[str, np.ndarray] = {}
    recall: dict[str, dict[str, float]] = {}
    for name, pairs in measured.copies.items():
        hit = pairs.matched(rule)
        if extra is not None:
            hit = hit | extra.copies[name]
        found[name] = hit
        recall[name] = {g: float(hit[measured.bench_groups == g].mean()) for g in BENCH_GROUPS}
        recall[name]["photo+scene"] = float(hit[measured.bench_groups != "near_uniform"].mean())
    hit = measured.distinct.matched(rule)
    pb, pc = measured.distinct.bench[hit].astype(np.int64), measured.distinct.corpus[hit].astype(np.int64)
    if extra is not None and len(extra.bench):
        width = len(measured.corpus_groups)
        keys = np.unique(
            np.concatenate([pb * width + pc, extra.bench.astype(np.int64) * width + extra.corpus])
        )
        pb, pc = keys // width, keys % width
    counted = counted or denominators(measured)
    scale = 1.0
    dropped = np.zeros(len(measured.corpus_groups), dtype=bool)
    dropped[pc] = True
    corpus_groups = measured.corpus_groups
    if counted.images is not None:
        inside = np.isin(pc, counted.images)
        pb, pc = pb[inside], pc[inside]
        dropped, corpus_groups = dropped[counted.images], corpus_groups[counted.images]
        scale = len(measured.corpus_groups) / len(counted.images)
    bench_of_pair = measured.bench_groups[pb]
    corpus_of_pair = measured.corpus_groups[pc]
    # Precision over a corpus of the distinct images plus one copy of every benchmark image per
    # mild edit: copies found against distinct images dropped, overall and for the samples
    # dropped as duplicates of one benchmark group's images.
    precision: dict[str, float | None] = {}
    for g in (*BENCH_GROUPS, "all"):
        mine = measured.bench_groups == g if g != "all" else np.ones(len(measured.bench_groups), dtype=bool)
        true = sum(int(found[n][mine].sum()) for n in MILD)
        false = scale * len(np.unique(pc[bench_of_pair == g] if g != "all" else pc))
        precision[g] = true / (true + false) if true + false else None
    return {
        "rule": rule_dict(rule),
        "recall": recall,
        "false_pairs": len(pb),
        "fpr": len(pb) / counted.total,
        "fpr_without_graphics": int(((bench_of_pair != "graphic") & (corpus_of_pair != "graphic")).sum())
        / counted.without_graphics,
        "fpr_by_benchmark_group": {
            g: int((bench_of_pair == g).sum()) / counted.by_bench_group[g] for g in BENCH_GROUPS
        },
        "fpr_by_corpus_group": {
            g: int((corpus_of_pair == g).sum()) / counted.by_corpus_group[g] for g in CORPUS_GROUPS
        },
        "corpus_dropped": float(dropped.mean()),
        "corpus_dropped_by_group": {g: float(dropped[corpus_groups == g].mean()) for g in CORPUS_GROUPS},
        "corpus_dropped_images": int(dropped.sum()),
        "distinct_images_counted": int(len(dropped)),
        "precision": precision,
    }


def rule_dict(rule: Rule) -> dict[str, Any]:
    """JSON-friendly rule (infinities as null)."""
    return {
        "max_distance": rule.max_distance,
        "min_complexity": None if math.isinf(rule.min_complexity) else rule.min_complexity,
        "max_signature": None if math.isinf(rule.max_signature) else rule.max_signature,
        "kind": rule.kind,
        "flip": rule.flip,
        "mirror_signature": rule.mirror_signature,
        "centre": rule.centre,
        "max_thumbnail": None if math.isinf(rule.max_thumbnail) else rule.max_thumbnail,
    }


def rule_of(data: dict[str, Any]) -> Rule:
    """Inverse of :func:`rule_dict`."""
    return Rule(
        max_distance=data["max_distance"],
        min_complexity=math.inf if data["min_complexity"] is None else data["min_complexity"],
        max_signature=math.inf if data["max_signature"] is None else data["max_signature"],
        kind=data["kind"],
        flip=data["flip"],
        mirror_signature=data["mirror_signature"],
        centre=data.get("centre", -1),
        max_thumbnail=math.inf if data.get("max_thumbnail") is None else data["max_thumbnail"],
    )


def sweep(measured: Measured) -> list[dict[str, Any]]:
    """Every rule of the grid (no flip): per centre distance and d, no guard and every guard.

    Guards are (kind, min complexity, max signature); the whole-image kind only without centre
    hashes (it is there to show why the job measures complexity without the border).
    """
    rules = []
    for centre in CENTRE_DISTANCES:
        kinds = KINDS if centre < 0 else ("complexity",)
        for d in range(MAX_D + 1):
            rules.append(Rule(d, centre=centre))
            rules += [
                Rule(d, c, s, kind, centre=centre)
                for kind in kinds
                for c in MIN_COMPLEXITIES
                for s in MAX_SIGNATURES
            ]
    return [evaluate(measured, rule) for rule in tqdm(rules, desc="rules", mininterval=10)]


def _ps(result: dict[str, Any], name: str) -> float:
    return result["recall"][name]["photo+scene"]


def _worst(result: dict[str, Any], name: str) -> float:
    """Recall of an edit in the weaker of the photo and scene groups."""
    return min(result["recall"][name]["photo"], result["recall"][name]["scene"])


def choose(grid: list[dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """The default rule, and the mild edits it is required to find.

    The hash rule is chosen on photographs, scenes, textures and near-uniform pictures (FPR
    without the flat graphics, as before the graphics existed): on flat graphics no hash rule
    reaches the targets alone, that is the verifier's job (:func:`choose_thumbnail`).

    1. Required edits: the mild edits that some rule of the grid finds with recall >= 0.95 on the
       photographs and on the scenes (each group on its own) at FPR <= 0.1% (near-uniform copies
       are left out: their pHash is noise, no distance finds them).
    2. Feasible rules: the job's complexity, no flip, FPR <= 0.1%, every required edit found at
       >= 0.95 in both groups, and no recall lower than without the guard at the same d and
       centre distance: of any edit on photos and scenes, and of the colour-keeping edits
       (resize, JPEG, blur) on near-uniform pictures (the guard must not cost the copies of flat
       pictures that pHash does find; a colour-shifted or greyscale flat picture is another
       colour, which is what the guard tells apart).
    3. d: the smallest feasible distance; a larger one only adds false positives for what the
       required edits need (it gains only on crops, still far from 0.95).
    4. Centre-hash distance at that d: the smallest feasible one (off if off is feasible): each
       bit more adds false pairs.
    5. Guard at that d and centre distance: among the feasible rules within 10% of the lowest FPR
       (differences the sample cannot resolve), the job's current guard if it is one of them (a
       default moves only when the data says it is worse), else the largest min complexity (the
       most pictures protected), then the largest signature distance (the gentlest check).
    """
    by_d = {
        (r["rule"]["max_distance"], r["rule"]["centre"]): r for r in grid if r["rule"]["min_complexity"] == 0
    }
    within = [r for r in grid if r["fpr_without_graphics"] <= TARGET_FPR]
    required = [n for n in MILD if any(_worst(r, n) >= TARGET_RECALL for r in within)]

    def feasible(r: dict[str, Any]) -> bool:
        base = by_d[(r["rule"]["max_distance"], r["rule"]["centre"])]
        return (
            r["rule"]["kind"] == "complexity"
            and all(_worst(r, n) >= TARGET_RECALL for n in required)
            and all(
                r["recall"][n][g] >= base["recall"][n][g] - GUARD_RECALL_COST - 1e-9
                for g, edits in (
                    ("photo", TRANSFORMS),
                    ("scene", TRANSFORMS),
                    ("near_uniform", COLOUR_KEEPING),
                )
                for n in edits
            )
        )

    candidates = [r for r in within if feasible(r)]
    d = min(r["rule"]["max_distance"] for r in candidates)
    centre = min(r["rule"]["centre"] for r in candidates if r["rule"]["max_distance"] == d)
    at_d = [r for r in candidates if r["rule"]["max_distance"] == d and r["rule"]["centre"] == centre]
    lowest = min(r["fpr_without_graphics"] for r in at_d)

    def key(r: dict[str, Any]) -> tuple[bool, float, float]:
        min_c = r["rule"]["min_complexity"]
        current = (min_c, r["rule"]["max_signature"]) == (
            DEFAULT_MIN_COMPLEXITY,
            DEFAULT_MAX_SIGNATURE_DISTANCE,
        )
        return (current, math.inf if min_c is None else min_c, r["rule"]["max_signature"])

    return max((r for r in at_d if r["fpr_without_graphics"] <= lowest * FPR_TIE), key=key), required


def check_against_job_guard(measured: Measured, rule: Rule) -> int:
    """Assert the vectorised rule agrees with the job's ComplexityGuard on every candidate pair."""
    guard = ComplexityGuard(rule.min_complexity, rule.max_signature)
    pairs = measured.distinct
    ours = pairs.matched(Rule(rule.max_distance, rule.min_complexity, rule.max_signature, centre=rule.centre))
    close = pairs.distance <= rule.max_distance
    if rule.centre >= 0:
        close |= pairs.distance_centre <= rule.centre
    near = np.flatnonzero(close)
    bench, corpus = measured.bench, measured.corpus
    for k in near:
        b, c = pairs.bench[k], pairs.corpus[k]
        theirs = guard.accepts(
            ImageFeatures(float(bench.complexity[b]), bench.signature[b]),
            ImageFeatures(float(corpus.complexity[c]), corpus.signature[c]),
        )
        assert theirs == bool(ours[k]), f"rule disagrees with ComplexityGuard on pair {b}, {c}"
    return len(near)


# --------------------------------------------------------------------------- verification

THUMBNAIL_THRESHOLDS = (0.0, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1)
# The chosen threshold may cost at most this much recall (absolute) of a mild edit in any of these
# groups, against the largest threshold tried (copies of near-uniform pictures are left out:
# nothing confirms a flat colour but its own colour).
VERIFY_GROUPS = ("photo", "scene", "graphic")
VERIFY_RECALL_COST = 0.01
# What the targets of issue 16 name: mild recall and the share of distinct images dropped.
TARGET_DROPPED = 0.001
TARGET_PRECISION = 0.98


def verification_sweep(measured: Measured, rule: Rule) -> list[dict[str, Any]]:
    """The hash rule with each thumbnail threshold (inf: the hash rule alone)."""
    return [evaluate(measured, replace(rule, max_thumbnail=t)) for t in (math.inf, *THUMBNAIL_THRESHOLDS)]


def choose_thumbnail(sweep: list[dict[str, Any]]) -> dict[str, Any]:
    """The default thumbnail threshold: the smallest whose recall of every mild edit, in every
    group of VERIFY_GROUPS, is within VERIFY_RECALL_COST of the recall at the largest threshold
    tried (where recall has levelled off: copies the thumbnails cannot confirm at any threshold,
    such as a colour-shifted flat picture, do not count against a threshold). A smaller threshold
    drops fewer distinct images."""
    plateau = sweep[-1]

    def cost(r: dict[str, Any]) -> float:
        return max(plateau["recall"][n][g] - r["recall"][n][g] for n in MILD for g in VERIFY_GROUPS)

    feasible = [r for r in sweep[1:] if cost(r) <= VERIFY_RECALL_COST + 1e-9]
    return min(feasible, key=lambda r: r["rule"]["max_thumbnail"])


def check_against_job_verifier(measured: Measured, rule: Rule) -> int:
    """Assert the vectorised rule agrees with the job's Verifier (rule and thumbnails) on every
    candidate pair the hashes of ``rule`` find (no flip)."""
    verifier = Verifier(ComplexityGuard(rule.min_complexity, rule.max_signature), rule.max_thumbnail)
    pairs = measured.distinct
    ours = pairs.matched(rule)
    close = pairs.distance <= rule.max_distance
    if rule.centre >= 0:
        close |= pairs.distance_centre <= rule.centre
    near = np.flatnonzero(close)
    bench, corpus = measured.bench, measured.corpus
    sides = [(_features(bench, pairs.bench[k]), _features(corpus, pairs.corpus[k])) for k in near]
    for k, verdict in zip(near, verifier.check(sides), strict=True):
        assert verdict.accepted == bool(ours[k]), f"rule disagrees with the job's Verifier on pair {k}"
    return len(near)


def verified_distance_sweep(measured: Measured, rule: Rule) -> list[dict[str, Any]]:
    """With the chosen verification, each whole-picture distance (centre distance as chosen)."""
    return [evaluate(measured, replace(rule, max_distance=d)) for d in range(0, MAX_D + 1, 2)]


def signal_table(results: list[tuple[str, dict[str, Any]]]) -> str:
    """Markdown: per signal and benchmark group, recall per edit, precision, FPR of the group."""
    body = [
        [
            label,
            g,
            *(f"{r['recall'][n][g]:.2f}" for n in TRANSFORMS),
            "-" if r["precision"][g] is None else f"{r['precision'][g]:.3f}",
            _pct(r["fpr_by_benchmark_group"][g]),
        ]
        for label, r in results
        for g in BENCH_GROUPS
    ]
    columns = ["signals", "benchmark group", *(_SHORT[n] for n in TRANSFORMS), "precision (mild)", "FPR"]
    return markdown_table(columns, body, align="ll" + "r" * (len(TRANSFORMS) + 2))


def dropped_table(results: list[tuple[str, dict[str, Any]]]) -> str:
    """Markdown: per signal, the share of distinct images dropped per corpus group and in all."""
    body = [
        [
            label,
            *(_pct(r["corpus_dropped_by_group"][g], 2) for g in CORPUS_GROUPS),
            f"{_pct(r['corpus_dropped'], 2)} ({r['corpus_dropped_images']})",
            "-" if r["precision"]["all"] is None else f"{r['precision']['all']:.3f}",
            _pct(r["fpr"]),
        ]
        for label, r in results
    ]
    columns = [
        "signals",
        *(f"{g} dropped" for g in CORPUS_GROUPS),
        "all dropped (images)",
        "precision",
        "FPR",
    ]
    return markdown_table(columns, body)


def threshold_table(sweep: list[dict[str, Any]]) -> str:
    """Markdown: per thumbnail threshold, the weakest mild recall per group, precision, dropped, FPR."""
    body = []
    for r in sweep:
        t = r["rule"]["max_thumbnail"]
        weakest = [min(r["recall"][n][g] for n in MILD) for g in VERIFY_GROUPS]
        body.append(
            [
                "off" if t is None else f"{100 * t:g}%",
                *(f"{w:.3f}" for w in weakest),
                "-" if r["precision"]["all"] is None else f"{r['precision']['all']:.3f}",
                f"{_pct(r['corpus_dropped'], 2)} ({r['corpus_dropped_images']})",
                _pct(r["fpr"]),
                f"{r['recall']['crop_15']['photo+scene']:.2f}",
                f"{r['recall']['grayscale']['photo+scene']:.2f}",
            ]
        )
    columns = [
        "thumbnail <=",
        *(f"weakest mild recall: {g}" for g in VERIFY_GROUPS),
        "precision",
        "distinct dropped",
        "FPR",
        "crop15 (photo+scene)",
        "grey (photo+scene)",
    ]
    return markdown_table(columns, body)


# --------------------------------------------------------------------------- embeddings (issue 16)

EMBEDDED_CACHE = WORK / "dedup_quality_embeddings.pkl"
# Bump when what embed_sets() computes changes, so --reuse does not pick up old embeddings.
# 3: the job's query_images frames the queries as the corpus (EMBEDDING_VERSION 2); no framed what-if.
EMBED_CACHE_VERSION = 3
SCORERS = WORK / "dedup_quality_scorers"
MODEL = "corpusforge-tiny"
# The demo's scorer recipe (pipeline/demo.py train_scorer): pairs of synthetic scenes and captions.
TRAIN_PAIRS = 2000
DEMO_SEED = 0
SIMILARITIES = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.92, 0.94, 0.96, 0.98)
EMBED_EDITS = ("crop_15", "flip", "crop_25")  # what the embeddings are for: the hashes miss these
EMBED_BATCH = 256


def random_checkpoint(seed: int) -> Path:
    """corpusforge-tiny, randomly initialised with torch seed ``seed`` (as tests/conftest.py makes one)."""
    import open_clip
    import torch

    path = SCORERS / f"{MODEL}-random-seed{seed}.pt"
    if not path.exists():
        register_configs()
        torch.manual_seed(seed)
        save_checkpoint(open_clip.create_model(MODEL), path)
    return path


def trained_checkpoint(steps: int, given: str | None = None) -> Path:
    """corpusforge-tiny trained as ``corpusforge demo`` trains its scorer (``pipeline.demo.train_scorer``
    at the demo's defaults: TRAIN_PAIRS synthetic scenes and their captions from the demo's seed 0,
    ``steps`` steps, torch seed 0); ``given``: that file, made by the demo, instead of training
    (training is deterministic on a CPU: two demo runs wrote the same bytes)."""
    if given:
        return Path(given)
    path = SCORERS / f"{MODEL}-{TRAIN_PAIRS}-{steps}.pt"
    if not path.exists():
        rng = random.Random(10_000 + DEMO_SEED)
        scenes = [random_scene(rng) for _ in range(TRAIN_PAIRS)]
        images = [render(s, (rng.randint(200, 480), rng.randint(200, 480)), rng) for s in scenes]
        model = train_clip(images, [s.caption for s in scenes], TrainOptions(steps=steps))
        save_checkpoint(model, path)
    return path


@dataclass
class Embedded:
    """Both image sets embedded through the job's code paths, per model (label -> checkpoint).

    Benchmark side: ``query_images`` of the served file (the stored image, its mirror, the stored
    15% centre crop), each through the model's preprocessing, kept as float16 like
    ``benchmark_embeddings.parquet``.
    Corpus side (planted copies and distinct images): the stored JPEG that ``process_image``
    makes, through the score job's own ``_preprocess`` and ``encode_image(normalize=True)``, kept
    as float16 like ``--save-embeddings`` and normalised again as the search reads them.
    """

    models: dict[str, str]
    queries: dict[str, np.ndarray]  # (benchmark rows * 3, dim) float32, QUERIES order per row
    copies: dict[str, dict[str, np.ndarray]]  # model -> edit -> (benchmark rows, dim)
    corpus: dict[str, np.ndarray]  # model -> (distinct images, dim)
    # The layout search only: a picture with bars has a second row (of the picture inside them);
    # the image each row is of, per edit and for the distinct images (None: one row per image).
    copy_owners: dict[str, np.ndarray] | None = None
    corpus_owners: np.ndarray | None = None


def _encode(models: dict[str, Any], pixels: Iterator[Any], total: int, desc: str) -> dict[str, np.ndarray]:
    """Every model's normalised image embedding (float32) of preprocessed pictures, in batches."""
    import torch

    out: dict[str, list[np.ndarray]] = {label: [] for label in models}
    batch: list[Any] = []

    def flush() -> None:
        stacked = torch.stack(batch)
        for label, loaded in models.items():
            with torch.inference_mode():
                out[label].append(loaded.model.encode_image(stacked, normalize=True).float().cpu().numpy())
        batch.clear()

    for tensor in tqdm(pixels, total=total, desc=desc, unit=" img", mininterval=10):
        batch.append(tensor)
        if len(batch) >= EMBED_BATCH:
            flush()
    if batch:
        flush()
    return {label: np.concatenate(parts) for label, parts in out.items()}


def _as_saved(matrix: np.ndarray) -> np.ndarray:
    """What the search reads back of saved corpus embeddings: float16, then float32 normalised."""
    return shard_search_matrix(matrix.astype(np.float16))


def shard_search_matrix(saved: np.ndarray) -> np.ndarray:
    """``shard_embeddings``' normalisation of a saved float16 matrix."""
    matrix = saved.astype(np.float32)
    return matrix / np.maximum(np.linalg.norm(matrix, axis=-1, keepdims=True), 1e-12)


def embed_sets(
    sets: Sets, options: ImageOptions, measured: Measured, checkpoints: dict[str, str]
) -> Embedded:
    """Rebuild both image sets (the same seeds as :func:`measure`) and embed them with every model."""
    models = {label: load_model(MODEL, path, "cpu") for label, path in checkpoints.items()}
    first = next(iter(models.values()))  # one config: one preprocessing for all models
    photos = bundled_photos()
    bench_items = benchmark_set(sets, photos)
    n = len(bench_items)
    if n != len(measured.bench_groups):
        raise SystemExit("the benchmark set differs from the measurement's: run without --reuse")

    def bench_pixels() -> Iterator[Any]:
        for item in bench_items:
            for picture in query_images(served(item.image), options):
                yield first.preprocess(picture)

    queries = _encode(models, bench_pixels(), n * len(QUERIES), "benchmark queries")

    copies: dict[str, dict[str, np.ndarray]] = {label: {} for label in models}
    for name, transform in TRANSFORMS.items():

        def copy_pixels(edit: Any = transform) -> Iterator[Any]:
            for item in bench_items:
                yield _preprocess(process_image(served(edit(item.image.convert("RGB"))), options).data, first)

        found = _encode(models, copy_pixels(), n, f"copies {name}")
        for label in models:
            copies[label][name] = _as_saved(found[label])
    mismatched = 0

    def corpus_pixels() -> Iterator[Any]:
        nonlocal mismatched
        for i, item in enumerate(distinct_set(sets, photos, bench_items)):
            processed = process_image(served(item.image), options)
            mismatched += int(processed.phash != measured.corpus.phash[i])
            yield _preprocess(processed.data, first)

    corpus = _encode(models, corpus_pixels(), len(measured.corpus_groups), "distinct corpus")
    if mismatched:
        raise SystemExit(f"{mismatched} distinct images differ from the measurement's: run without --reuse")
    return Embedded(
        models=dict(checkpoints),
        queries={label: q.astype(np.float16).astype(np.float32) for label, q in queries.items()},
        copies=copies,
        corpus={label: _as_saved(c) for label, c in corpus.items()},
    )


def embed_cached(
    sets: Sets, options: ImageOptions, measured: Measured, checkpoints: dict[str, str], reuse: bool
) -> Embedded:
    """:func:`embed_sets`, or with ``reuse`` the last embeddings of the same sets and checkpoints."""
    key = json.dumps(
        {
            "sets": asdict(sets),
            "version": EMBED_CACHE_VERSION,
            "models": {label: _file_digest(Path(path)) for label, path in checkpoints.items()},
        },
        sort_keys=True,
    )
    return _pickled(
        EMBEDDED_CACHE, key, reuse, "embeddings", lambda: embed_sets(sets, options, measured, checkpoints)
    )


def _pickled(path: Path, key: str, reuse: bool, what: str, compute: Any) -> Any:
    """``compute()``, or with ``reuse`` what ``path`` saved under the same ``key``; saved again."""
    if reuse and path.exists():
        with open(path, "rb") as handle:
            saved_key, saved = pickle.load(handle)
        if saved_key == key:
            log.info("reusing the %s in %s", what, shown(path))
            return saved
    computed = compute()
    with open(path, "wb") as handle:
        pickle.dump((key, computed), handle)
    return computed


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


@dataclass
class EmbeddingCandidates:
    """Pairs the embedding search makes candidates at the lowest threshold swept (a superset of
    every higher threshold's), minus those the hash search already found (the job verifies a pair
    the hashes found once, in the hashes' orientation), with the job's verdicts on each: the job
    emits every embedding hit in both orientations and verifies each."""

    sample: np.ndarray  # corpus row (distinct) or benchmark row of the copy (copies)
    bench: np.ndarray
    similarity: np.ndarray
    plain: np.ndarray  # the job's Verifier, benchmark side as is
    mirrored: np.ndarray  # the job's Verifier, benchmark side mirrored

    @property
    def accepted(self) -> np.ndarray:
        """The job drops the sample when either orientation is accepted."""
        return self.plain | self.mirrored


def search_top(
    queries: np.ndarray, samples: np.ndarray, min_similarity: float, per_row: int = len(QUERIES)
) -> tuple[np.ndarray, ...]:
    """The job's exact search (``search_shard``): per sample, the benchmark rows whose best query
    reaches ``min_similarity``, at most MAX_CANDIDATES_PER_SAMPLE (the most similar, ties to the
    lower row), with the best similarity (the job emits each in both orientations). Returns
    (sample, row, similarity) arrays."""
    rows = queries.shape[0] // per_row
    out: list[tuple[np.ndarray, ...]] = []
    for start in range(0, len(samples), SEARCH_BLOCK):
        block = (samples[start : start + SEARCH_BLOCK] @ queries.T).reshape(-1, rows, per_row)
        best = block.max(axis=2)
        top = np.argsort(-best, axis=1, kind="stable")[:, :MAX_CANDIDATES_PER_SAMPLE]
        value = np.take_along_axis(best, top, axis=1)
        keep = value >= min_similarity
        sample = np.broadcast_to(np.arange(start, start + len(block))[:, None], top.shape)[keep]
        row = top[keep]
        out.append((sample, row, value[keep]))
    return tuple(np.concatenate(parts) for parts in zip(*out, strict=True))


def search_owned(
    queries: np.ndarray, vectors: np.ndarray, owners: np.ndarray | None, lowest: float, per_row: int
) -> tuple[np.ndarray, ...]:
    """:func:`search_top` where several rows may be of one image (``owners[row]``), as the job's
    ``search_shard`` counts a pair once, with its best similarity. Returns (image, row, similarity)."""
    sample, row, value = search_top(queries, vectors, lowest, per_row)
    if owners is None:
        return sample, row, value
    sample = owners[sample]
    order = np.lexsort((-value, row, sample))
    sample, row, value = sample[order], row[order], value[order]
    first = np.ones(len(sample), dtype=bool)
    first[1:] = (sample[1:] != sample[:-1]) | (row[1:] != row[:-1])
    return sample[first], row[first], value[first]


def _features(table: FeatureTable, i: int) -> ImageFeatures:
    """Row ``i``'s features as the job reads them: a benchmark row's from the benchmark hash table
    (with its zoomed thumbnails), a corpus sample's from the feature cache (none); both with the
    thumbnail inside bars where the picture has them."""
    zoomed = None if table.zoomed is None else b"".join(_raw(z[i]) for z in table.zoomed)
    unbarred = _raw(table.inside[i]) if table.barred[i] else None
    return ImageFeatures(
        float(table.complexity[i]), table.signature[i], _raw(table.thumbnail[i]), zoomed, unbarred
    )


def _raw(pixels: np.ndarray) -> bytes:
    return np.clip(pixels, 0, 255).astype(np.uint8).tobytes()


def _verdicts(
    measured: Measured,
    verifier: Verifier,
    bench_rows: np.ndarray,
    flipped: np.ndarray,
    sample_features: Any,
) -> np.ndarray:
    """The job's Verifier on each candidate, as ``check_shard`` asks it."""
    bench = measured.bench
    cache: dict[int, ImageFeatures] = {}
    sides = []
    for b, flip, theirs in zip(bench_rows, flipped, sample_features, strict=True):
        mine = cache.get(int(b))
        if mine is None:
            mine = cache[int(b)] = _features(bench, int(b))
        sides.append((mine.mirrored() if flip else mine, theirs))
    return np.array([v.accepted for v in verifier.check(sides)], dtype=bool)


def embedding_candidates(
    measured: Measured,
    embedded: Embedded,
    label: str,
    rule: Rule,
    images: np.ndarray,
    lowest: float = min(SIMILARITIES),
    per_row: int = len(QUERIES),
) -> tuple[dict[str, EmbeddingCandidates], EmbeddingCandidates]:
    """Per edit the copies' own pairs (copy i, benchmark i), and the distinct pairs (same-source
    pairs left out, as everywhere), found by the embeddings of model ``label`` at the lowest
    threshold swept and not by the hashes of ``rule``, each verified by the job's Verifier with
    ``rule``'s guard and thumbnail threshold, in both orientations as the job does."""
    verifier = Verifier(ComplexityGuard(rule.min_complexity, rule.max_signature), rule.max_thumbnail)
    queries = embedded.queries[label]
    copies = {}
    for name, pairs in measured.copies.items():
        owners = None if embedded.copy_owners is None else embedded.copy_owners[name]
        sample, row, value = search_owned(queries, embedded.copies[label][name], owners, lowest, per_row)
        own = sample == row
        by_hash = pairs.distance <= rule.max_distance
        if rule.centre >= 0:
            by_hash = by_hash | (pairs.distance_centre <= rule.centre)
        own &= ~by_hash[sample]
        sample, value = sample[own], value[own]
        features = [_features(measured.copy_tables[name], int(i)) for i in sample]
        copies[name] = EmbeddingCandidates(
            sample, sample, value, *_both(measured, verifier, sample, features)
        )
    owners = embedded.corpus_owners
    sample, row, value = search_owned(queries, embedded.corpus[label], owners, lowest, per_row)
    width = len(measured.corpus_groups)
    pairs = measured.distinct
    close = pairs.distance <= rule.max_distance
    if rule.centre >= 0:
        close |= pairs.distance_centre <= rule.centre
    hashed = pairs.bench[close].astype(np.int64) * width + pairs.corpus[close]
    keep = (
        (measured.bench.sources[row] != measured.corpus.sources[sample])
        & ~np.isin(row.astype(np.int64) * width + sample, hashed)
        & np.isin(sample, images)
    )
    sample, row, value = sample[keep], row[keep], value[keep]
    features = [_features(measured.corpus, c) for c in sample]
    return copies, EmbeddingCandidates(sample, row, value, *_both(measured, verifier, row, features))


def _both(
    measured: Measured, verifier: Verifier, bench_rows: np.ndarray, sample_features: list[ImageFeatures]
) -> tuple[np.ndarray, np.ndarray]:
    """The job's verdicts on each candidate as ``search_shard`` emits it: benchmark side as is,
    and mirrored."""
    as_is = np.zeros(len(bench_rows), dtype=bool)
    plain = _verdicts(measured, verifier, bench_rows, as_is, sample_features)
    return plain, _verdicts(measured, verifier, bench_rows, ~as_is, sample_features)


def with_embeddings(
    measured: Measured,
    rule: Rule,
    copies: dict[str, EmbeddingCandidates],
    distinct: EmbeddingCandidates,
    min_similarity: float,
    counted: Denominators,
) -> dict[str, Any]:
    """:func:`evaluate` of ``rule`` (the hash candidates, verified) plus the embedding candidates
    at ``min_similarity``, verified in both orientations (accepted when either is)."""
    n = len(measured.bench_groups)
    found = {}
    for name, c in copies.items():
        hit = np.zeros(n, dtype=bool)
        hit[c.bench[c.accepted & (c.similarity >= min_similarity)]] = True
        found[name] = hit
    at = distinct.similarity >= min_similarity
    chosen = at & distinct.accepted
    extra = Extra(found, distinct.bench[chosen], distinct.sample[chosen])
    result = evaluate(measured, rule, extra, counted)
    result["embedding"] = {
        "min_similarity": min_similarity,
        "distinct_candidates": int(at.sum()),
        "distinct_candidates_rejected": int((at & ~distinct.accepted).sum()),
        "copy_candidates": {name: int((c.similarity >= min_similarity).sum()) for name, c in copies.items()},
        "copy_candidates_rejected": {
            name: int(((c.similarity >= min_similarity) & ~c.accepted).sum()) for name, c in copies.items()
        },
        "copies_accepted_only_mirrored": {
            name: int(((c.similarity >= min_similarity) & c.mirrored & ~c.plain).sum())
            for name, c in copies.items()
        },
        "distinct_accepted_only_mirrored": int((at & distinct.mirrored & ~distinct.plain).sum()),
    }
    return result


def similarity_sweep(
    measured: Measured,
    rule: Rule,
    copies: dict[str, EmbeddingCandidates],
    distinct: EmbeddingCandidates,
    counted: Denominators,
    thresholds: tuple[float, ...] = SIMILARITIES,
) -> list[dict[str, Any]]:
    """The verified hash rule plus the embedding candidates, at each of ``thresholds``."""
    return [with_embeddings(measured, rule, copies, distinct, t, counted) for t in thresholds]


# --------------------------------------------------------------------------- layout candidates

LAYOUT_LABEL = "layout"
LAYOUT_SIMILARITIES = (0.8, 0.85, 0.88, 0.9, 0.92, 0.94, 0.95, 0.96, 0.98)


def layout_embedded(measured: Measured) -> Embedded:
    """Both image sets as the job's layout search sees them (``--layout-search``), as an
    :class:`Embedded` with the one label LAYOUT_LABEL: the benchmark queries from the benchmark
    hash rows' thumbnails (``benchmark_queries``), the samples' vectors from the thumbnails the
    job's feature cache holds (``sample_vectors``; a picture with bars has a second row, of the
    picture inside them, as ``FeatureCache.layouts`` gives it), all the measurement's."""
    bench = measured.bench
    zoomed = (
        [b"".join(_raw(z[i]) for z in bench.zoomed) for i in range(len(bench.groups))]
        if bench.zoomed
        else None
    )
    queries = layout_queries([_raw(t) for t in bench.thumbnail], zoomed or [None] * len(bench.groups))

    def rows(table: FeatureTable) -> tuple[np.ndarray, np.ndarray]:
        barred = np.flatnonzero(table.barred)
        vectors = layout_vectors(np.concatenate([table.thumbnail, table.inside[barred]]))
        return vectors, np.concatenate([np.arange(len(table.thumbnail)), barred])

    copies = {name: rows(table) for name, table in measured.copy_tables.items()}
    corpus, corpus_owners = rows(measured.corpus)
    return Embedded(
        models={LAYOUT_LABEL: "thumbnail layout (no model)"},
        queries={LAYOUT_LABEL: queries},
        copies={LAYOUT_LABEL: {name: vectors for name, (vectors, _) in copies.items()}},
        corpus={LAYOUT_LABEL: corpus},
        copy_owners={name: owners for name, (_, owners) in copies.items()},
        corpus_owners=corpus_owners,
    )


def drawn_graphic_recall(
    measured: Measured, rule: Rule, copies: dict[str, EmbeddingCandidates], min_similarity: float
) -> tuple[int, dict[str, float]]:
    """Recall per edit over the benchmark graphics the layout search is for (``layout.drawn``):
    the verified hash matches of ``rule`` plus the verified layout candidates at
    ``min_similarity``. Returns the number of such graphics and the recalls."""
    rows = layout_drawn(measured.bench.thumbnail) & (measured.bench_groups == "graphic")
    n = len(measured.bench_groups)
    recall = {}
    for name, c in copies.items():
        hit = np.zeros(n, dtype=bool)
        hit[c.bench[c.accepted & (c.similarity >= min_similarity)]] = True
        hit |= measured.copies[name].matched(rule)
        recall[name] = round(float(hit[rows].mean()), 3) if rows.any() else 0.0
    return int(rows.sum()), recall


def render_dropped(
    measured: Measured, rule: Rule, layouts: EmbeddingCandidates, min_similarity: float, path: str
) -> None:
    """Write ``path``: every distinct image ``rule``'s verified hash matches and the verified
    layout candidates at ``min_similarity`` drop, beside the benchmark image it matched (their
    verification thumbnails, 4x), numbered, with how it was found and the smaller thumbnail
    distance of the two orientations (the job's Verifier)."""
    from PIL import ImageDraw

    hit = measured.distinct.matched(rule)
    pairs = [
        ("hash", int(b), int(c))
        for b, c in zip(measured.distinct.bench[hit], measured.distinct.corpus[hit], strict=True)
    ]
    chosen = (layouts.similarity >= min_similarity) & layouts.accepted
    seen = {c for _, _, c in pairs}
    for b, c, v in zip(
        layouts.bench[chosen], layouts.sample[chosen], layouts.similarity[chosen], strict=True
    ):
        if int(c) not in seen:
            pairs.append((f"layout {v:.3f}", int(b), int(c)))
            seen.add(int(c))
    verifier = Verifier(ComplexityGuard(rule.min_complexity, rule.max_signature), rule.max_thumbnail)
    corpus = measured.corpus
    side, columns = 4 * THUMBNAIL_SIZE, 3
    rows = max(1, -(-len(pairs) // columns))
    cell = 2 * side + 150
    sheet = Image.new("RGB", (columns * cell, rows * (side + 6)), "white")
    pen = ImageDraw.Draw(sheet)

    def picture(pixels: np.ndarray) -> Image.Image:
        grid = np.clip(pixels, 0, 255).astype(np.uint8).reshape(THUMBNAIL_SIZE, THUMBNAIL_SIZE, 3)
        return Image.fromarray(grid, "RGB").resize((side, side), Image.Resampling.NEAREST)

    for k, (how, b, c) in enumerate(pairs):
        mine = _features(measured.bench, b)
        theirs = _features(corpus, c)
        verdicts = verifier.check([(mine, theirs), (mine.mirrored(), theirs)])
        distance = min(v.thumbnail_distance for v in verdicts if v.thumbnail_distance is not None)
        x, y = (k // rows) * cell, (k % rows) * (side + 6)
        sheet.paste(picture(measured.bench.thumbnail[b]), (x, y))
        sheet.paste(picture(corpus.thumbnail[c]), (x + side + 4, y))
        text = f"{k + 1}. found by\n{how}\nthumbnail\n{100 * distance:.2f}%"
        pen.text((x + 2 * side + 10, y + 4), text, fill="black")
        log.info(
            "dropped %d: %s, benchmark %s, distinct %s",
            k + 1,
            how,
            measured.bench.sources[b],
            corpus.sources[c],
        )
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    log.info("the %d distinct images dropped at the defaults: %s", len(pairs), path)


def choose_layout_similarity(sweep: list[dict[str, Any]]) -> dict[str, Any]:
    """The default layout threshold: the largest whose recall of every mild edit on graphics is
    within VERIFY_RECALL_COST of the lowest threshold's (a lower threshold only sends more pairs
    to the verifier)."""
    plateau = sweep[0]

    def cost(r: dict[str, Any]) -> float:
        return max(plateau["recall"][n]["graphic"] - r["recall"][n]["graphic"] for n in MILD)

    feasible = [r for r in sweep if cost(r) <= VERIFY_RECALL_COST + 1e-9]
    return max(feasible, key=lambda r: r["embedding"]["min_similarity"])


def choose_similarity(sweep: list[dict[str, Any]]) -> dict[str, Any]:
    """The default similarity threshold: the largest whose recall of every edit of EMBED_EDITS, in
    every group of VERIFY_GROUPS, is within VERIFY_RECALL_COST of the lowest threshold's (the most
    candidates; every candidate is verified, so a lower threshold never finds fewer copies). A
    higher threshold sends fewer pairs to the thumbnails: fewer false positives, less work."""
    plateau = sweep[0]

    def cost(r: dict[str, Any]) -> float:
        return max(plateau["recall"][n][g] - r["recall"][n][g] for n in EMBED_EDITS for g in VERIFY_GROUPS)

    feasible = [r for r in sweep if cost(r) <= VERIFY_RECALL_COST + 1e-9]
    return max(feasible, key=lambda r: r["embedding"]["min_similarity"])


def similarity_table(
    sweeps: dict[str, list[dict[str, Any]]], default: float, edits: tuple[str, ...] = EMBED_EDITS
) -> str:
    """Markdown: per model and threshold, embedding candidates, recall of ``edits`` per group
    (photo / scene / graphic), precision, distinct images dropped, FPR."""
    body = []
    for label, rows in sweeps.items():
        for r in rows:
            e = r["embedding"]
            t = e["min_similarity"]
            body.append(
                [
                    label,
                    f"{t:g}" + (" (default)" if math.isclose(t, default) else ""),
                    f"{e['distinct_candidates']} ({e['distinct_candidates_rejected']})",
                    *(" / ".join(f"{r['recall'][n][g]:.2f}" for g in VERIFY_GROUPS) for n in edits),
                    "-" if r["precision"]["all"] is None else f"{r['precision']['all']:.3f}",
                    f"{_pct(r['corpus_dropped'], 2)} ({r['corpus_dropped_images']})",
                    _pct(r["fpr"]),
                ]
            )
    columns = [
        "model",
        "min similarity",
        "distinct candidates (rejected)",
        *(f"{_SHORT[n]}: photo / scene / graphic" for n in edits),
        "precision",
        "distinct dropped",
        "FPR",
    ]
    return markdown_table(columns, body)


# --------------------------------------------------------------------------- report

_SHORT = {
    "resize_0.5": "resize",
    "jpeg_q30": "jpeg30",
    "blur_r2": "blur",
    "colour_shift": "colour",
    "text_overlay": "text",
    "crop_5": "crop5",
    "crop_15": "crop15",
    "grayscale": "grey",
    "flip": "flip",
    "crop_25": "crop25",
    "letterbox": "letterbox",
}


def rule_text(rule: dict[str, Any]) -> str:
    """A rule in words."""
    if rule["min_complexity"] == 0:
        guard = "no guard"
    else:
        kind = "complexity" if rule["kind"] == "complexity" else "whole-image complexity"
        below = "always" if rule["min_complexity"] is None else f"{kind} < {rule['min_complexity']:g}"
        guard = f"{below}: signature <= {rule['max_signature']:g}"
    flip = ""
    if rule["flip"]:
        flip = ", flip-invariant" + ("" if rule["mirror_signature"] else " (unmirrored signature)")
    centre = "" if rule.get("centre", -1) < 0 else f", centre <= {rule['centre']}"
    thumb = "" if rule.get("max_thumbnail") is None else f", thumbnail <= {100 * rule['max_thumbnail']:g}%"
    return f"d <= {rule['max_distance']}{centre}, {guard}{flip}{thumb}"


def _pct(value: float | None, digits: int = 3) -> str:
    return pct(value, digits, missing="-")


def sweep_table(rows: list[dict[str, Any]], first: str = "max_distance") -> str:
    """Markdown table, one row per rule: FPR, dropped share, recall per edit as 'photo / scene'."""
    columns = ["d" if first == "max_distance" else first, "FPR", "false pairs", "corpus dropped"]
    body = [
        [
            r["rule"][first],
            _pct(r["fpr"]),
            r["false_pairs"],
            _pct(r["corpus_dropped"], 1),
            *(f"{r['recall'][n]['photo']:.2f} / {r['recall'][n]['scene']:.2f}" for n in TRANSFORMS),
        ]
        for r in rows
    ]
    return markdown_table([*columns, *(_SHORT[n] for n in TRANSFORMS)], body)


def grid_table(grid: list[dict[str, Any]], d: int, kind: str, centre: int) -> str:
    """Markdown table at one d: rows min complexity, columns max signature; 'FPR / colour / grey' recall."""
    rows = {
        (r["rule"]["min_complexity"], r["rule"]["max_signature"]): r
        for r in grid
        if r["rule"]["max_distance"] == d and r["rule"]["kind"] == kind and r["rule"]["centre"] == centre
    }
    signatures = (10.0, 15.0, 20.0, 25.0, 30.0, 40.0)
    body = []
    for min_c in (2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 15.0, 20.0, 30.0, math.inf):
        key_c = None if math.isinf(min_c) else min_c
        cells = [
            f"{_pct(r['fpr'])} / {_ps(r, 'colour_shift'):.2f} / {_ps(r, 'grayscale'):.2f}"
            for r in (rows[(key_c, s)] for s in signatures)
        ]
        body.append(["always" if key_c is None else f"{min_c:g}", *cells])
    columns = ["min complexity", *(f"sig <= {s:g}" for s in signatures)]
    return markdown_table(columns, body, align="r" * len(columns))


def bucket_table(measured: Measured, distances: tuple[int, ...]) -> str:
    """Markdown table: FPR without guard by the pair's smaller complexity, job's vs whole image."""
    names = {"complexity": "complexity (job)", "whole_image": "whole-image complexity"}
    fprs = ", ".join(f"FPR d<={d}" for d in distances)
    body = []
    for i, (lo, hi) in enumerate(zip(BUCKET_EDGES[:-1], BUCKET_EDGES[1:], strict=True)):
        cells = []
        for kind in KINDS:
            total = int(measured.distinct_by_bucket[kind][i])
            cmin = measured.distinct.min_complexity[kind]
            inside = (cmin >= lo) & (cmin < hi)
            rates = [
                _pct(int((inside & (measured.distinct.distance <= d)).sum()) / total if total else None)
                for d in distances
            ]
            cells.append(f"{total}, " + ", ".join(rates))
        body.append([f"{lo:g}-{hi:g}", *cells])
    return markdown_table(["smaller complexity", *(f"{names[k]}: pairs, {fprs}" for k in KINDS)], body)


def group_table(results: list[dict[str, Any]]) -> str:
    """Markdown table: recall per edit and benchmark group, FPR of that group's benchmark images."""
    body = [
        [
            rule_text(r["rule"]),
            g,
            *(f"{r['recall'][n][g]:.2f}" for n in TRANSFORMS),
            _pct(r["fpr_by_benchmark_group"][g]),
        ]
        for r in results
        for g in BENCH_GROUPS
    ]
    columns = ["rule", "benchmark group", *(_SHORT[n] for n in TRANSFORMS), "FPR"]
    return markdown_table(columns, body, align="ll" + "r" * (len(TRANSFORMS) + 1))


def corpus_table(results: list[dict[str, Any]]) -> str:
    """Markdown table: FPR and share of distinct images dropped, per corpus group."""
    body = [
        [
            rule_text(r["rule"]),
            *(
                f"{_pct(r['fpr_by_corpus_group'][g])}, {_pct(r['corpus_dropped_by_group'][g], 1)}"
                for g in CORPUS_GROUPS
            ),
            f"{_pct(r['fpr'])}, {_pct(r['corpus_dropped'], 1)}",
        ]
        for r in results
    ]
    columns = ["rule", *(f"{g}: FPR, dropped" for g in CORPUS_GROUPS), "all: FPR, dropped"]
    return markdown_table(columns, body)


# --------------------------------------------------------------------------- main


class _Help(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the module docstring's layout and shows every option's default."""


@dataclass(frozen=True)
class EmbeddingRun:
    """Which models embed the image sets (``--embedding-models``)."""

    models: tuple[str, ...]  # "random", "trained"
    model_seed: int
    train_steps: int
    trained_checkpoint: str | None
    distinct_stride: int
    layout: bool = True  # measure the layout candidates (--layout-search) too
    render_dropped: str | None = None  # PNG of the distinct images the defaults drop (--render-dropped)

    def checkpoints(self) -> dict[str, str]:
        """Label -> checkpoint file of every model asked for (made once, kept in _work)."""
        found = {}
        if "random" in self.models:
            found[f"{MODEL} random init (seed {self.model_seed})"] = str(random_checkpoint(self.model_seed))
        if "trained" in self.models:
            path = trained_checkpoint(self.train_steps, self.trained_checkpoint)
            found[f"{MODEL} trained {self.train_steps} steps (the demo's scorer)"] = str(path)
        return found


def parse_sets(argv: list[str] | None = None) -> tuple[Sets, bool, EmbeddingRun]:
    """The image sets' sizes from the command line, whether to reuse the last measurement, and the
    embedding models."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=_Help)
    add = parser.add_argument
    add(
        "--reuse",
        action="store_true",
        help=f"reuse the last measurement of the same sets ({shown(MEASURED_CACHE)}) and only sweep again",
    )
    add("--seed", type=int, default=0, help="seed of both image sets")
    add("--benchmark-windows", type=int, default=27, help="benchmark images cut from the photos")
    add("--benchmark-scenes", type=int, default=120, help="benchmark synthetic scenes")
    add("--benchmark-uniform", type=int, default=40, help="benchmark near-uniform images")
    add("--benchmark-graphics", type=int, default=120, help="benchmark flat graphics drawn with Pillow")
    add("--benchmark-icons", type=int, default=40, help="benchmark Adwaita icons (colour and symbolic)")
    add("--distinct-scenes", type=int, default=3000, help="distinct synthetic scenes (another seed)")
    add("--distinct-crops", type=int, default=1500, help="distinct small windows of the photos")
    add("--distinct-textures", type=int, default=1000, help="distinct 1/f photo-like textures")
    add("--distinct-uniform", type=int, default=1000, help="distinct near-uniform images")
    add("--distinct-graphics", type=int, default=1500, help="distinct flat graphics")
    add("--distinct-icons", type=int, default=400, help="distinct Adwaita icons (colour and symbolic)")
    add(
        "--variants",
        type=int,
        default=2,
        help="per benchmark scene and graphic, distinct pictures of its layout (another object colour, "
        "shape or background; other colours)",
    )
    add(
        "--embedding-models",
        default="random,trained",
        help="models for the embedding signal, comma-separated: 'random' (corpusforge-tiny randomly "
        "initialised), 'trained' (corpusforge-tiny trained on synthetic scenes as the demo's scorer); "
        "'none': no embedding signal",
    )
    add("--model-seed", type=int, default=0, help="torch seed of the randomly initialised model")
    add("--train-steps", type=int, default=250, help="training steps of the 'trained' model (the demo's)")
    add(
        "--trained-checkpoint",
        default=None,
        help="the 'trained' model's file, e.g. the scorer `corpusforge demo` wrote "
        "(WORKDIR/scorer/corpusforge-tiny-2000-250.pt), instead of training it here (about 30 minutes "
        "on 2 busy cores); kept in benchmarks/_work/dedup_quality_scorers otherwise",
    )
    add(
        "--distinct-stride",
        type=int,
        default=8,
        help="the embedding signal is measured on every Nth distinct image (the job's verifier takes "
        "about 40 ms per rejected candidate on 2 busy cores; a random-init model sends every sample's 5 "
        "nearest benchmark images to it); 1: all",
    )
    add(
        "--no-layout",
        action="store_true",
        help="do not measure the layout candidates (--layout-search; no model, every distinct image)",
    )
    add(
        "--render-dropped",
        default=None,
        metavar="PNG",
        help="write the distinct images the defaults drop (hashes + layouts + thumbnails), each beside "
        "the benchmark image it matched, with how it was found and its thumbnail distance",
    )
    values = vars(parser.parse_args(argv))
    reuse = values.pop("reuse")
    render = values.pop("render_dropped")
    names = tuple(m for m in values.pop("embedding_models").split(",") if m and m != "none")
    layout = not values.pop("no_layout")
    if unknown := set(names) - {"random", "trained"}:
        parser.error(f"--embedding-models: unknown {sorted(unknown)}")
    run = EmbeddingRun(
        names,
        values.pop("model_seed"),
        values.pop("train_steps"),
        values.pop("trained_checkpoint"),
        values.pop("distinct_stride"),
        layout,
        render,
    )
    if render and not layout:
        parser.error("--render-dropped needs the layout measurement (leave out --no-layout)")
    return Sets(**values), reuse, run


def main(argv: list[str] | None = None) -> None:
    """Measure, sweep, choose the defaults; print the tables and write the results."""
    sets, reuse, embedding_run = parse_sets(argv)
    setup_logging()
    started = time.perf_counter()
    options = ImageOptions()
    measured, setup = measure_cached(sets, options, reuse)
    log.info("hashed everything in %.0f s; sweeping rules", time.perf_counter() - started)

    grid = sweep(measured)
    chosen, required = choose(grid)
    rule = rule_of(chosen["rule"])
    checked = check_against_job_guard(measured, rule)
    no_guard = {
        r["rule"]["max_distance"]: r
        for r in grid
        if r["rule"]["min_complexity"] == 0 and r["rule"]["centre"] < 0
    }
    guard = (rule.min_complexity, rule.max_signature)
    centre = rule.centre
    guarded_whole = [evaluate(measured, Rule(d, *guard)) for d in range(MAX_D + 1)]
    guarded = [evaluate(measured, Rule(d, *guard, centre=centre)) for d in range(MAX_D + 1)]
    flipped = [evaluate(measured, Rule(d, *guard, flip=True, centre=centre)) for d in range(MAX_D + 1)]
    d = rule.max_distance
    by_centre = [evaluate(measured, Rule(d, *guard, centre=c)) for c in (-1, *range(0, MAX_CENTRE_D + 1, 2))]
    flip_unmirrored = evaluate(measured, Rule(d, *guard, flip=True, mirror_signature=False, centre=centre))
    whole_image = evaluate(measured, Rule(d, *guard, kind="whole_image", centre=centre))
    verification = verification_sweep(measured, rule)
    verified = choose_thumbnail(verification)
    vrule = rule_of(verified["rule"])
    checked_verifier = check_against_job_verifier(measured, vrule)
    verified_flip = evaluate(measured, replace(vrule, flip=True))
    verified_by_d = verified_distance_sweep(measured, vrule)
    verified_by_centre = [
        evaluate(measured, replace(vrule, centre=c)) for c in (-1, *range(0, MAX_CENTRE_D + 1, 2))
    ]
    signals = [
        ("pHash + centre (hash only)", chosen),
        ("pHash + centre + thumbnail", verified),
        ("... --flip-invariant, hash only", flipped[d]),
        ("... --flip-invariant + thumbnail", verified_flip),
    ]
    embedding_sweeps: dict[str, list[dict[str, Any]]] = {}
    embedding_chosen: dict[str, dict[str, Any]] = {}
    checkpoints = embedding_run.checkpoints()
    if checkpoints:
        log.info("embedding both image sets with %s", ", ".join(checkpoints))
        embedded = embed_cached(sets, options, measured, checkpoints, reuse)
        images = np.arange(0, len(measured.corpus_groups), embedding_run.distinct_stride)
        counted = denominators(measured, images)
        on_sample = evaluate(measured, vrule, None, counted)
        signals.append(
            (
                f"pHash + centre + thumbnail (distinct: 1 in {embedding_run.distinct_stride})",
                on_sample,
            )
        )
        for label in checkpoints:
            log.info("embedding candidates of %s", label)
            copy_candidates, distinct_candidates = embedding_candidates(
                measured, embedded, label, vrule, images
            )
            embedding_sweeps[label] = similarity_sweep(
                measured, vrule, copy_candidates, distinct_candidates, counted
            )
            embedding_chosen[label] = choose_similarity(embedding_sweeps[label])
            at_default = next(
                r
                for r in embedding_sweeps[label]
                if math.isclose(r["embedding"]["min_similarity"], DEFAULT_EMBEDDING_MIN_SIMILARITY)
            )
            signals.append((f"pHash + centre + embedding ({label}) + thumbnail", at_default))
            chosen_at = embedding_chosen[label]["embedding"]["min_similarity"]
            if not math.isclose(chosen_at, DEFAULT_EMBEDDING_MIN_SIMILARITY):
                signals.append(
                    (
                        f"pHash + centre + embedding ({label}, >= {chosen_at:g}) + thumbnail",
                        embedding_chosen[label],
                    )
                )
    layout_sweep: list[dict[str, Any]] = []
    layout_chosen: dict[str, Any] | None = None
    drawn_count, drawn_recall = 0, {}
    if embedding_run.layout:
        log.info("layout candidates of both image sets")
        laid = layout_embedded(measured)
        everything = np.arange(len(measured.corpus_groups))
        counted_all = denominators(measured, everything)
        copy_candidates, distinct_candidates = embedding_candidates(
            measured, laid, LAYOUT_LABEL, vrule, everything, min(LAYOUT_SIMILARITIES), len(LAYOUT_QUERIES)
        )
        layout_sweep = similarity_sweep(
            measured, vrule, copy_candidates, distinct_candidates, counted_all, LAYOUT_SIMILARITIES
        )
        layout_chosen = choose_layout_similarity(layout_sweep)
        at_default = next(
            r
            for r in layout_sweep
            if math.isclose(r["embedding"]["min_similarity"], DEFAULT_LAYOUT_MIN_SIMILARITY)
        )
        signals.append(("pHash + centre + layout + thumbnail (the default)", at_default))
        drawn_count, drawn_recall = drawn_graphic_recall(
            measured, vrule, copy_candidates, DEFAULT_LAYOUT_MIN_SIMILARITY
        )
        if not math.isclose(layout_chosen["embedding"]["min_similarity"], DEFAULT_LAYOUT_MIN_SIMILARITY):
            chosen_at = layout_chosen["embedding"]["min_similarity"]
            signals.append((f"pHash + centre + layout (>= {chosen_at:g}) + thumbnail", layout_chosen))
        if embedding_run.render_dropped:
            render_dropped(
                measured,
                vrule,
                distinct_candidates,
                DEFAULT_LAYOUT_MIN_SIMILARITY,
                embedding_run.render_dropped,
            )
    compact_grid = [
        {
            "rule": r["rule"],
            "fpr": r["fpr"],
            "corpus_dropped": r["corpus_dropped"],
            "recall_photo_scene": {n: _ps(r, n) for n in TRANSFORMS},
        }
        for r in grid
    ]
    result = {
        "setup": setup,
        "options": asdict(sets),
        "image_options": {
            "image_size": options.image_size,
            "resize_mode": str(options.resize_mode),
            "encode_quality": options.encode_quality,
            "served_quality": SERVED_QUALITY,
        },
        "required_edits": required,
        "chosen": chosen,
        "chosen_flip": flipped[d],
        "chosen_flip_unmirrored_signature": flip_unmirrored,
        "chosen_guard_on_whole_image_complexity": whole_image,
        "pairs_checked_against_ComplexityGuard": checked,
        "no_guard": [no_guard[k] for k in range(MAX_D + 1)],
        "guarded_without_centre": guarded_whole,
        "guarded": guarded,
        "guarded_flip": flipped,
        "by_centre_distance": by_centre,
        "verification_sweep": verification,
        "verified": verified,
        "verified_flip": verified_flip,
        "verified_by_distance": verified_by_d,
        "verified_by_centre_distance": verified_by_centre,
        "pairs_checked_against_Verifier": checked_verifier,
        "embedding_models": checkpoints,
        "embedding_sweeps": embedding_sweeps,
        "embedding_chosen": {
            label: r["embedding"]["min_similarity"] for label, r in embedding_chosen.items()
        },
        "layout_sweep": layout_sweep,
        "layout_drawn_graphics": drawn_count,
        "layout_drawn_graphic_recall": drawn_recall,
        "layout_chosen": None if layout_chosen is None else layout_chosen["embedding"]["min_similarity"],
        "grid": compact_grid,
        "seconds": round(time.perf_counter() - started, 1),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1))

    even = range(0, MAX_D + 1, 2)
    b, c = setup["benchmark_images"], setup["distinct_images"]
    print(
        f"\nBenchmark: {sum(b.values())} images {b}, {setup['planted_copies']} planted copies; distinct "
        f"corpus: {sum(c.values())} images {c}; {setup['distinct_pairs']} distinct pairs "
        f"({setup['same_source_pairs_left_out']} same-source pairs left out; "
        f"{setup['odd_distances_among_candidates']} odd distances among candidates)."
    )
    print("\nNo guard, no centre hash (recall photo / scene):\n" + sweep_table([no_guard[k] for k in even]))
    guard_words = rule_text({**chosen["rule"], "max_distance": 0, "centre": -1}).split(", ", 1)[1]
    print(f"\nGuard {guard_words}, no centre hash:\n" + sweep_table([guarded_whole[k] for k in even]))
    print(f"\nGuard {guard_words}, centre <= {centre}:\n" + sweep_table([guarded[k] for k in even]))
    print(
        f"\nAt d <= {d}, guard {guard_words}, by centre distance (-1: off):\n"
        + sweep_table(by_centre, "centre")
    )
    print(
        f"\nGuard {guard_words}, centre <= {centre}, flip-invariant:\n"
        + sweep_table([flipped[k] for k in even])
    )
    for kind in KINDS:
        at = centre if kind == "complexity" else -1
        print(f"\nGuard grid at d <= {d}, centre {at}, {kind} (FPR / colour / grey recall, photos+scenes):")
        print(grid_table(grid, d, kind, at))
    print(
        "\nFPR without guard by the pair's smaller complexity:\n" + bucket_table(measured, (d - 2, d, d + 2))
    )
    compared = [no_guard[d], guarded_whole[d], chosen, whole_image, flipped[d], flip_unmirrored]
    print("\nAt the chosen d, per benchmark group:\n" + group_table(compared))
    print("\nAt the chosen d, per distinct corpus group:\n" + corpus_table(compared))
    print(
        "\nVerification: each thumbnail threshold on the chosen hash rule:\n" + threshold_table(verification)
    )
    print("\nPer signal and benchmark group (recall per edit):\n" + signal_table(signals))
    print("\nPer signal, distinct images dropped per corpus group:\n" + dropped_table(signals))
    print(
        f"\nWith the thumbnail check, by whole-picture distance (centre <= {vrule.centre}):\n"
        + sweep_table(verified_by_d)
    )
    print(
        f"\nWith the thumbnail check at d <= {d}, by centre distance:\n"
        + sweep_table(verified_by_centre, "centre")
    )
    print(
        f"\nVerification: {rule_text(verified['rule'])}: precision {verified['precision']['all']:.3f}, "
        f"distinct images dropped {_pct(verified['corpus_dropped'], 2)} "
        f"({verified['corpus_dropped_images']}), "
        f"FPR {_pct(verified['fpr'])}; checked against the job's Verifier on {checked_verifier} pairs"
    )
    if embedding_sweeps:
        print(
            f"\nEmbeddings: {rule_text(verified['rule'])} plus the embedding candidates at each threshold, "
            "all verified (recall photo / scene / graphic):\n"
            + similarity_table(embedding_sweeps, DEFAULT_EMBEDDING_MIN_SIMILARITY)
        )
        for label, r in embedding_chosen.items():
            print(
                f"Chosen --embedding-min-similarity with {label}: {r['embedding']['min_similarity']:g} "
                f"(precision {r['precision']['all']:.3f}, distinct dropped {_pct(r['corpus_dropped'], 2)}, "
                f"FPR {_pct(r['fpr'])})"
            )
    if layout_sweep and layout_chosen is not None:
        print(
            f"\nLayouts: {rule_text(verified['rule'])} plus the layout candidates at each "
            "threshold, all verified, every distinct image (recall photo / scene / graphic):\n"
            + similarity_table({LAYOUT_LABEL: layout_sweep}, DEFAULT_LAYOUT_MIN_SIMILARITY, (*MILD, "crop_5"))
        )
        print(
            f"Drawn benchmark graphics ({drawn_count}; the ones searched), recall at the default "
            f"{DEFAULT_LAYOUT_MIN_SIMILARITY:g}: "
            + ", ".join(f"{_SHORT.get(n, n)} {v:.3f}" for n, v in drawn_recall.items())
        )
        print(
            f"Chosen --layout-min-similarity: {layout_chosen['embedding']['min_similarity']:g} "
            f"(precision {layout_chosen['precision']['all']:.3f}, distinct dropped "
            f"{_pct(layout_chosen['corpus_dropped'], 2)}, FPR {_pct(layout_chosen['fpr'])})"
        )
    print(
        f"\nRequired edits (reach {TARGET_RECALL} at FPR <= {100 * TARGET_FPR:g}% somewhere): {required}\n"
        f"Chosen: {rule_text(chosen['rule'])}: FPR {_pct(chosen['fpr'])} ({chosen['false_pairs']} of "
        f"{measured.distinct_total} pairs), distinct images dropped {_pct(chosen['corpus_dropped'], 2)}; "
        f"rule checked against ComplexityGuard on {checked} pairs\n"
        f"Results: {shown(RESULTS)} ({result['seconds']:.0f} s)"
    )


if __name__ == "__main__":
    main()
