"""Quality check of benchmark decontamination by pHash (issue: dedup job).

    .venv/bin/python benchmarks/dedup_quality.py [--distinct-scenes 3000] [--seed 0]

1. Benchmark set: scikit-image's bundled photographs (whole, and large windows of them),
   synthetic scenes and near-uniform images (solid colours, flat colours with noise, faint
   gradients, blank pages).
2. Planted copies: every benchmark image through each edit of
   ``testkit.transforms.TRANSFORMS`` (resize 0.5x, JPEG q30, blur r2, colour shift,
   text band, 5% and 15% crop, greyscale, mirror).
3. Distinct corpus: thousands of other pictures (synthetic scenes of another seed, small windows
   of the photographs, 1/f photo-like textures, near-uniform images). Every (benchmark, distinct)
   pair is a false-positive opportunity, except pairs cut from the same photograph or drawn from
   the same scene description (the same picture up to jitter), which are left out and counted.
4. Every file is served as JPEG q90 and goes through the job's code paths: the corpus side through
   ``process_image`` (its pHash is what the raw shard records; complexity and colour signature
   are computed on the stored JPEG as the dedup job reads it from the tar), the benchmark side
   through ``stored_image`` as the dedup job hashes benchmarks.
5. Sweeps the Hamming distance d = 0..16 and the low-complexity guard (min complexity x max
   signature distance, complexity of the picture without its border as the job computes it, and
   of the whole padded image for comparison), with and without flip-invariant matching; reports
   recall per edit and image group, FPR on distinct pairs and the share of distinct corpus images
   that would be dropped; picks the defaults (see :func:`choose`) and prints the tables.

Results: benchmarks/_work/dedup_quality.json; recorded in docs/benchmarks.md ("Dedup quality").
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import math
import random
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from harness.paths import WORK, shown
from harness.table import markdown_table, pct
from PIL import Image
from tqdm import tqdm

from pipeline.dedup.benchmark_hashes import hash_image
from pipeline.dedup.centre import centre_phash
from pipeline.dedup.complexity import (
    DEFAULT_MAX_SIGNATURE_DISTANCE,
    DEFAULT_MIN_COMPLEXITY,
    colour_signature,
    complexity,
)
from pipeline.dedup.guard import ComplexityGuard, ImageFeatures
from pipeline.dedup.hamming import hamming_distance
from pipeline.image import ImageOptions, process_image
from pipeline.image.phash import from_signed64, thumbnail
from pipeline.image.process import stored_image
from pipeline.logs import setup_logging
from pipeline.synthetic.scenes import random_scene, render
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
BENCH_GROUPS = ("photo", "scene", "near_uniform")
CORPUS_GROUPS = ("photo", "scene", "texture", "near_uniform")
BUCKET_EDGES = (0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 15.0, 20.0, 25.0, 30.0, math.inf)


@dataclass(frozen=True)
class Sets:
    """How many pictures of each kind the benchmark set and the distinct corpus hold."""

    seed: int
    benchmark_windows: int
    benchmark_scenes: int
    benchmark_uniform: int
    distinct_scenes: int
    distinct_crops: int
    distinct_textures: int
    distinct_uniform: int

    @property
    def distinct_count(self) -> int:
        """Pictures of the distinct corpus."""
        return self.distinct_scenes + self.distinct_crops + self.distinct_textures + self.distinct_uniform


@dataclass
class Item:
    """One picture of the benchmark set or of the distinct corpus."""

    group: str  # photo, scene, near_uniform, texture
    source: str  # pairs with the same source are not counted as distinct
    image: Image.Image = field(repr=False)


@dataclass
class FeatureTable:
    """What the dedup job knows of each image, as columns."""

    phash: np.ndarray  # uint64
    phash_flipped: np.ndarray  # uint64 (benchmark side only; the corpus side repeats phash)
    phash_centre: np.ndarray  # uint64, pHash of the picture's centre (pipeline.dedup.centre)
    complexity: np.ndarray  # the job's: thumbnail std of the picture without border padding
    whole_image: np.ndarray  # thumbnail std of the whole stored (padded) image
    signature: np.ndarray  # (n, 8, 8, 3) uint8, the job's colour signature
    groups: np.ndarray
    sources: np.ndarray


# --------------------------------------------------------------------------- image sets


def _size(rng: random.Random, min_side: int = 256, max_side: int = 640) -> tuple[int, int]:
    # The synthetic world's size distribution (aspect 0.6-1.6).
    width = rng.randint(min_side, max_side)
    aspect = rng.uniform(0.6, 1.6)
    return width, max(min_side // 2, min(max_side, int(width / aspect)))


def benchmark_set(sets: Sets, photos: dict[str, Image.Image]) -> list[Item]:
    """Whole photographs, large windows of them, synthetic scenes and near-uniform images."""
    rng = random.Random(sets.seed)
    items = [Item("photo", f"photo:{name}", image) for name, image in photos.items()]
    big = [name for name, image in photos.items() if min(image.size) >= 300]
    for i in range(sets.benchmark_windows):
        name = big[i % len(big)]
        items.append(Item("photo", f"photo:{name}", random_window(photos[name], rng, 0.5, 0.8)))
    for _ in range(sets.benchmark_scenes):
        scene = random_scene(rng)
        items.append(Item("scene", f"scene:{scene}", render(scene, _size(rng), rng)))
    for i in range(sets.benchmark_uniform):
        kind = NEAR_UNIFORM_KINDS[i % len(NEAR_UNIFORM_KINDS)]
        items.append(Item("near_uniform", f"uniform:b{i}", near_uniform(kind, rng, _size(rng, 200, 640))))
    return items


def distinct_set(sets: Sets, photos: dict[str, Image.Image]) -> Iterator[Item]:
    """Other pictures, one at a time: scenes of another seed, small photo windows, textures, flats."""
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


# --------------------------------------------------------------------------- features


def served(image: Image.Image) -> bytes:
    """The file a crawler would fetch: JPEG q90."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=SERVED_QUALITY)
    return buffer.getvalue()


def _whole_image(image: Image.Image) -> float:
    return float(np.asarray(thumbnail(image), dtype=np.float64).std())


def benchmark_row(data: bytes, options: ImageOptions) -> tuple[int, int, int, float, float, np.ndarray]:
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
    )


def corpus_row(data: bytes, options: ImageOptions) -> tuple[int, int, int, float, float, np.ndarray]:
    """The pHash the download job stores, and the features dedup computes from the stored JPEG."""
    processed = process_image(data, options)
    with Image.open(io.BytesIO(processed.data)) as decoded:
        stored = decoded.convert("RGB")
    return (
        processed.phash,
        processed.phash,
        centre_phash(stored, options.border_color),
        complexity(stored, options.border_color),
        _whole_image(stored),
        colour_signature(stored, options.border_color),
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
    """

    max_distance: int
    min_complexity: float = 0.0
    max_signature: float = math.inf
    kind: str = "complexity"
    flip: bool = False
    mirror_signature: bool = True
    centre: int = -1  # also a match when the centre hashes are within this distance (-1: off)


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

    def matched(self, rule: Rule) -> np.ndarray:
        """Boolean per pair: does ``rule`` call it a match."""
        trusted = self.min_complexity[rule.kind] >= rule.min_complexity
        near = self.distance <= rule.max_distance
        if rule.centre >= 0:
            near |= self.distance_centre <= rule.centre
        match = near & (trusted | (self.signature <= rule.max_signature))
        if rule.flip:
            signature = self.signature_mirrored if rule.mirror_signature else self.signature
            match |= (self.distance_flipped <= rule.max_distance) & (
                trusted | (signature <= rule.max_signature)
            )
        return match


def _signature_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise ``signature_distance`` (mean absolute difference) of two (n, 8, 8, 3) stacks."""
    return np.abs(a.astype(np.int16) - b.astype(np.int16)).reshape(len(a), -1).mean(axis=1)


def make_pairs(bench: FeatureTable, corpus: FeatureTable, b_idx: np.ndarray, c_idx: np.ndarray) -> Pairs:
    """Pairs (bench[b_idx[k]], corpus[c_idx[k]])."""
    b_sig, c_sig = bench.signature[b_idx], corpus.signature[c_idx]
    return Pairs(
        bench=b_idx,
        corpus=c_idx,
        distance=hamming_distance(bench.phash[b_idx], corpus.phash[c_idx]),
        distance_flipped=hamming_distance(bench.phash_flipped[b_idx], corpus.phash[c_idx]),
        distance_centre=hamming_distance(bench.phash_centre[b_idx], corpus.phash_centre[c_idx]),
        signature=_signature_distances(b_sig, c_sig),
        signature_mirrored=_signature_distances(b_sig[:, :, ::-1], c_sig),
        min_complexity={
            kind: np.minimum(getattr(bench, kind)[b_idx], getattr(corpus, kind)[c_idx]) for kind in KINDS
        },
    )


# --------------------------------------------------------------------------- measurement


@dataclass
class Measured:
    """Everything the sweeps need."""

    bench: FeatureTable
    corpus: FeatureTable
    copies: dict[str, Pairs]  # per edit: (benchmark i, its copy i)
    distinct: Pairs  # distinct pairs within MAX_D of the hash or the mirrored hash; others never match
    distinct_total: int
    bench_groups: np.ndarray
    corpus_groups: np.ndarray
    distinct_by_bench_group: dict[str, int]
    distinct_by_corpus_group: dict[str, int]
    distinct_by_bucket: dict[str, np.ndarray]  # kind -> all distinct pairs per BUCKET_EDGES bucket


def measure(sets: Sets, options: ImageOptions) -> tuple[Measured, dict[str, Any]]:
    """Build both image sets, hash them through the job's code paths and pair them up."""
    photos = bundled_photos()
    bench_items = benchmark_set(sets, photos)
    n = len(bench_items)
    bench = featurize(bench_items, n, "benchmark", options)
    index = np.arange(n)
    copies = {}
    for name, transform in TRANSFORMS.items():
        planted = [Item(b.group, b.source, transform(b.image.convert("RGB"))) for b in bench_items]
        copies[name] = make_pairs(bench, featurize(planted, n, f"copies {name}", options), index, index)
    corpus = featurize(distinct_set(sets, photos), sets.distinct_count, "distinct corpus", options)

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
        distinct=make_pairs(bench, corpus, b_idx, c_idx),
        distinct_total=int((~same_source).sum()),
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


def evaluate(measured: Measured, rule: Rule) -> dict[str, Any]:
    """Recall per edit and benchmark group, false-positive rates, share of distinct corpus images dropped."""
    recall: dict[str, dict[str, float]] = {}
    for name, pairs in measured.copies.items():
        hit = pairs.matched(rule)
        recall[name] = {g: float(hit[measured.bench_groups == g].mean()) for g in BENCH_GROUPS}
        recall[name]["photo+scene"] = float(hit[measured.bench_groups != "near_uniform"].mean())
    hit = measured.distinct.matched(rule)
    dropped = np.zeros(len(measured.corpus_groups), dtype=bool)
    dropped[measured.distinct.corpus[hit]] = True
    bench_of_pair = measured.bench_groups[measured.distinct.bench]
    corpus_of_pair = measured.corpus_groups[measured.distinct.corpus]
    return {
        "rule": rule_dict(rule),
        "recall": recall,
        "false_pairs": int(hit.sum()),
        "fpr": int(hit.sum()) / measured.distinct_total,
        "fpr_by_benchmark_group": {
            g: int(hit[bench_of_pair == g].sum()) / measured.distinct_by_bench_group[g] for g in BENCH_GROUPS
        },
        "fpr_by_corpus_group": {
            g: int(hit[corpus_of_pair == g].sum()) / measured.distinct_by_corpus_group[g]
            for g in CORPUS_GROUPS
        },
        "corpus_dropped": float(dropped.mean()),
        "corpus_dropped_by_group": {
            g: float(dropped[measured.corpus_groups == g].mean()) for g in CORPUS_GROUPS
        },
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
    within = [r for r in grid if r["fpr"] <= TARGET_FPR]
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
    lowest = min(r["fpr"] for r in at_d)

    def key(r: dict[str, Any]) -> tuple[bool, float, float]:
        min_c = r["rule"]["min_complexity"]
        current = (min_c, r["rule"]["max_signature"]) == (
            DEFAULT_MIN_COMPLEXITY,
            DEFAULT_MAX_SIGNATURE_DISTANCE,
        )
        return (current, math.inf if min_c is None else min_c, r["rule"]["max_signature"])

    return max((r for r in at_d if r["fpr"] <= lowest * FPR_TIE), key=key), required


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
    return f"d <= {rule['max_distance']}{centre}, {guard}{flip}"


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


def parse_sets(argv: list[str] | None = None) -> Sets:
    """The image sets' sizes from the command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=_Help)
    add = parser.add_argument
    add("--seed", type=int, default=0, help="seed of both image sets")
    add("--benchmark-windows", type=int, default=27, help="benchmark images cut from the photos")
    add("--benchmark-scenes", type=int, default=120, help="benchmark synthetic scenes")
    add("--benchmark-uniform", type=int, default=40, help="benchmark near-uniform images")
    add("--distinct-scenes", type=int, default=3000, help="distinct synthetic scenes (another seed)")
    add("--distinct-crops", type=int, default=1500, help="distinct small windows of the photos")
    add("--distinct-textures", type=int, default=1000, help="distinct 1/f photo-like textures")
    add("--distinct-uniform", type=int, default=1000, help="distinct near-uniform images")
    return Sets(**vars(parser.parse_args(argv)))


def main(argv: list[str] | None = None) -> None:
    """Measure, sweep, choose the defaults; print the tables and write the results."""
    sets = parse_sets(argv)
    setup_logging()
    started = time.perf_counter()
    options = ImageOptions()
    measured, setup = measure(sets, options)
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
        f"\nRequired edits (reach {TARGET_RECALL} at FPR <= {100 * TARGET_FPR:g}% somewhere): {required}\n"
        f"Chosen: {rule_text(chosen['rule'])}: FPR {_pct(chosen['fpr'])} ({chosen['false_pairs']} of "
        f"{measured.distinct_total} pairs), distinct images dropped {_pct(chosen['corpus_dropped'], 2)}; "
        f"rule checked against ComplexityGuard on {checked} pairs\n"
        f"Results: {shown(RESULTS)} ({result['seconds']:.0f} s)"
    )


if __name__ == "__main__":
    main()
