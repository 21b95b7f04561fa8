"""Dedup speed: our hashing against imagehash, and our exact Hamming matching against FAISS.

    .venv/bin/pip install faiss-cpu        # optional, benchmark only (not a corpusforge dependency)
    .venv/bin/python benchmarks/dedup.py [--part hash|match|all] [--max-distance 8] ...

Part ``hash`` (single core: the process is pinned to one CPU while it runs):

1. builds (once, cached in benchmarks/_work/dedup/photos_seed<S>) --images photo-like JPEGs of
   1-3 megapixels (harness.photos): every other one from a scikit-image sample photograph
   (cropped, resized up, sensor-like grain), the others synthetic scenes (blurred, unevenly lit,
   textured, grainy), quality 80-92, so that files have photo-like sizes;
2. for --rounds rounds, interleaved, times each method over all files, file read and decode
   included, with the download job's default image options (``ImageOptions()``):

   - the peer, ``imagehash.phash(PIL.Image.open(path))``;
   - ours, the pHash the jobs compute for a file: ``phash(stored_image(data, options)[0])``
     (the download job's check, reduced decode and resize, then ``pipeline.image.phash.phash``,
     whose thumbnail and DCT run in the C extension ``_phash`` when it is built), and the same
     with the extension switched off (numpy);
   - the dedup job's whole per-benchmark-image work, ``pipeline.dedup.benchmark_hashes.hash_image``
     (the same decode and resize, pHash of the picture, of its mirror and of its centre, complexity
     and colour signature);
   - two references: libjpeg-turbo's 1/8-scale greyscale decode (``draft("L", 1/8 scale)`` +
     ``load()``) and Pillow's full decode;

   and, on the stored 256 px pictures already in memory, the pHash alone (what the download job
   adds per image on top of its decode and resize), with and without the C extension, and
   imagehash on the same pictures. The best round of each counts, in CPU seconds of this thread
   (robust to other processes on a shared machine) and in wall seconds;
3. checks the bits: ``phash(exact=True)`` of the decoded file against imagehash (the same
   definition, bit-identical), the C extension against numpy and the fast mode against the exact
   mode on the stored pictures, and how far the stored picture's pHash is from imagehash's hash
   of the original file; times imagehash and ours again per source and on the first 30 files
   re-encoded at each of --qualities (the ratio depends on how much entropy-coded data a pixel
   carries); prints the table and writes benchmarks/_work/dedup_hash_results.json.

Part ``match``:

1. makes --corpus corpus hashes and --benchmark benchmark hashes: uniform random ones, plus
   --planted corpus hashes that are benchmark hashes with 0..max(d) random bits flipped, plus
   clustered ones on both sides (real pHashes are not uniform): pHashes of rendered synthetic
   scenes as cluster centres, members with 0..12 bits flipped; the corpus is shuffled;
2. for each distance (--max-distance first, then --also-distances): ours = ``HammingIndex``
   over the benchmark hashes, then ``search`` over all corpus hashes (one thread, build
   included in its time); FAISS = ``IndexBinaryFlat`` over the benchmark hashes and
   ``range_search`` (radius d + 1: FAISS returns distances < radius) over the first
   --faiss-fraction of the corpus with --faiss-threads OpenMP threads, extrapolated linearly to
   the whole corpus (it is brute force: its time is proportional to the number of queries);
3. asserts that both return the identical (query, index, distance) set on that fraction, and
   that every planted pair within d is found; prints the table and writes
   benchmarks/_work/dedup_match_results.json. Without faiss installed, ours runs alone (the
   planted pairs are still checked).

Nothing leaves the machine; FAISS is imported only here.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from harness.paths import WORK, shown, work_dir
from harness.photos import PHOTO, CorpusEntry, PhotoSpec, load_corpus
from harness.table import text_table
from harness.timing import Timing, best_of_rounds, one_core
from PIL import Image

import pipeline.image.phash as phash_module
from pipeline.dedup.benchmark_hashes import hash_image
from pipeline.dedup.hamming import HammingIndex, hamming_distance, plan_bands
from pipeline.image import ImageOptions
from pipeline.image.phash import phash
from pipeline.image.process import stored_image
from pipeline.logs import setup_logging
from pipeline.synthetic.scenes import random_scene, render

CLUSTER_FLIPS = 12
PHOTOS = PhotoSpec(long_side=(1200, 1700), max_aspect=1.5, min_short_side=800, photo_every=2)
IMAGE = ImageOptions()  # the download job's defaults: what the stored pictures are made with
RATIO_ROUNDS = 3  # rounds of the per-source and per-quality ratios

log = logging.getLogger("benchmarks.dedup")


@dataclass(frozen=True)
class Options:
    """Command-line options of one benchmark run."""

    part: str
    images: int
    rounds: int
    qualities: tuple[int, ...]
    seed: int
    corpus: int
    benchmark: int
    planted: int
    clustered_corpus: int
    clustered_benchmark: int
    centres: int
    max_distance: int
    also_distances: tuple[int, ...]
    faiss_fraction: float
    faiss_threads: int


def parse_options(argv: list[str] | None = None) -> Options:
    """Options from the command line."""
    parser = argparse.ArgumentParser(
        description="Dedup speed: hashing vs imagehash, Hamming matching vs FAISS (see the docstring).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--part", choices=("hash", "match", "all"), default="all", help="what to measure")
    parser.add_argument("--images", type=int, default=200, help="JPEGs of 1-3 MP for the hashing part")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per hashing method (best counts)")
    parser.add_argument(
        "--qualities",
        default="60,75,95",
        help="JPEG qualities the first 30 photos are re-encoded at, to show the ratio against file size",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the photos and of the hash sets")
    parser.add_argument("--corpus", type=int, default=10_000_000, help="corpus hashes (queries)")
    parser.add_argument("--benchmark", type=int, default=100_000, help="benchmark hashes (the index)")
    parser.add_argument(
        "--planted", type=int, default=10_000, help="corpus hashes = benchmark hashes with 0..max(d) flips"
    )
    parser.add_argument("--clustered-corpus", type=int, default=100_000, help="corpus hashes near centres")
    parser.add_argument(
        "--clustered-benchmark", type=int, default=2_000, help="benchmark hashes near centres"
    )
    parser.add_argument("--centres", type=int, default=200, help="cluster centres (synthetic scene pHashes)")
    parser.add_argument("--max-distance", type=int, default=8, help="the default match distance d (bits)")
    parser.add_argument(
        "--also-distances",
        default="4,6,10",
        help="comma-separated further distances to measure ('' for none)",
    )
    parser.add_argument(
        "--faiss-fraction",
        type=float,
        default=0.02,
        help="share of the corpus FAISS searches (its time is extrapolated linearly; 1 = all)",
    )
    parser.add_argument("--faiss-threads", type=int, default=os.cpu_count() or 1, help="FAISS OpenMP threads")
    args = parser.parse_args(argv)
    also = tuple(int(v) for v in args.also_distances.split(",") if v.strip())
    for d in (args.max_distance, *also):
        if not 0 <= d <= 32:
            parser.error(f"distances must be in 0..32, got {d}")
    if not 0 < args.faiss_fraction <= 1:
        parser.error("--faiss-fraction must be in (0, 1]")
    if args.planted + args.clustered_corpus > args.corpus or args.clustered_benchmark > args.benchmark:
        parser.error("planted and clustered hashes must fit in --corpus / --benchmark")
    if args.images < 1 or args.rounds < 1:
        parser.error("--images and --rounds must be >= 1")
    return Options(
        part=args.part,
        images=args.images,
        rounds=args.rounds,
        qualities=tuple(int(v) for v in args.qualities.split(",") if v.strip()),
        seed=args.seed,
        corpus=args.corpus,
        benchmark=args.benchmark,
        planted=args.planted,
        clustered_corpus=args.clustered_corpus,
        clustered_benchmark=args.clustered_benchmark,
        centres=args.centres,
        max_distance=args.max_distance,
        also_distances=also,
        faiss_fraction=args.faiss_fraction,
        faiss_threads=args.faiss_threads,
    )


# --------------------------------------------------------------------------- part 1: hashing


def extension_built() -> bool:
    """True when the C extension ``pipeline.image._phash`` is built (phash() then uses it)."""
    return phash_module._phash is not None


@contextmanager
def without_extension() -> Iterator[None]:
    """phash() without the C extension for the block: its numpy path, the same bits."""
    saved, phash_module._phash = phash_module._phash, None
    try:
        yield
    finally:
        phash_module._phash = saved


def imagehash_phash(image: Image.Image) -> int:
    """The peer: imagehash's pHash as an unsigned 64-bit integer."""
    import imagehash

    return int(str(imagehash.phash(image)), 16)


def ours_phash(path: Path) -> int:
    """The pHash the jobs compute for a file: the download job's stored picture, then phash()."""
    return phash(stored_image(path.read_bytes(), IMAGE)[0])


def decode_floor(path: Path) -> tuple[int, int]:
    """libjpeg-turbo's 1/8-scale greyscale decode: what any pHash of the decoded file must pay."""
    with Image.open(path) as image:
        image.draft("L", (image.width // 8, image.height // 8))
        image.load()
        return image.size


def full_decode(path: Path) -> tuple[int, int]:
    """Pillow's full decode of the file."""
    with Image.open(path) as image:
        image.load()
        return image.size


def file_methods() -> dict[str, Callable[[Path], object]]:
    """Per-file methods (file read and decode included), by name; the C-extension-off variant too."""
    methods: dict[str, Callable[[Path], object]] = {
        "imagehash": lambda path: imagehash_phash(Image.open(path)),
        "ours_phash": ours_phash,
        "ours_hash_image": lambda path: hash_image(path.read_bytes(), IMAGE),
        "decode_floor": decode_floor,
        "full_decode": full_decode,
    }
    if extension_built():

        def ours_phash_numpy(path: Path) -> int:
            with without_extension():
                return ours_phash(path)

        methods["ours_phash_numpy"] = ours_phash_numpy
    return methods


FILE_LABELS = {
    "imagehash": "imagehash.phash(Image.open(path))",
    "ours_phash": "ours: phash(stored_image(bytes))",
    "ours_phash_numpy": "  the same without the C extension",
    "ours_hash_image": "ours: dedup hash_image(bytes) (5 features)",
    "decode_floor": "  libjpeg-turbo 1/8 grey decode only",
    "full_decode": "  full decode only (PIL load)",
}
STORED_LABELS = {
    "stored_phash": "phash(stored picture)",
    "stored_phash_numpy": "  the same without the C extension",
    "stored_imagehash": "imagehash.phash(stored picture)",
}


def _over(paths: list[Path], method: Callable[[Path], object]) -> Callable[[], object]:
    return lambda: [method(path) for path in paths]


def time_files(
    paths: list[Path], methods: dict[str, Callable[[Path], object]], rounds: int
) -> dict[str, Timing]:
    """Best-of-rounds timing per file of ``methods`` over ``paths``, on one core."""
    for path in paths[:3]:  # warm the page cache and the imports
        for method in methods.values():
            method(path)
    with one_core():
        timings = best_of_rounds({name: _over(paths, m) for name, m in methods.items()}, rounds)
    return {name: t.per(len(paths)) for name, t in timings.items()}


def time_stored(stored: list[Image.Image], rounds: int) -> dict[str, Timing]:
    """Best-of-rounds timing per picture of the pHash alone on the stored pictures, on one core."""

    def numpy_path() -> list[int]:
        with without_extension():
            return [phash(image) for image in stored]

    methods: dict[str, Callable[[], object]] = {
        "stored_phash": lambda: [phash(image) for image in stored],
        "stored_imagehash": lambda: [imagehash_phash(image) for image in stored],
    }
    if extension_built():
        methods["stored_phash_numpy"] = numpy_path
    with one_core():
        timings = best_of_rounds(methods, rounds)
    return {name: t.per(len(stored)) for name, t in timings.items()}


def check_bits(paths: list[Path], stored: list[Image.Image]) -> dict[str, Any]:
    """How our hashes relate to imagehash's and to each other on these files."""
    exact_equal = extension_equal = fast_equal = 0
    distances = []
    for path, picture in zip(paths, stored, strict=True):
        with Image.open(path) as original:
            original.load()
            theirs = imagehash_phash(original)
            exact_equal += phash(original, exact=True) == theirs
        fast = phash(picture)
        with without_extension():
            extension_equal += fast == phash(picture)
        fast_equal += fast == phash(picture, exact=True)
        distances.append(int(hamming_distance(np.uint64(fast), np.uint64(theirs))))
    n = len(paths)
    return {
        "exact_mode_identical_to_imagehash": f"{exact_equal}/{n}",
        "extension_identical_to_numpy": f"{extension_equal}/{n}" if extension_built() else "not built",
        "fast_identical_to_exact_on_stored": f"{fast_equal}/{n}",
        "stored_vs_original_imagehash_bits_mean": float(np.mean(distances)),
        "stored_vs_original_imagehash_bits_max": int(max(distances)),
    }


def _ratio(paths: list[Path], methods: dict[str, Callable[[Path], object]]) -> dict[str, float]:
    """imagehash and ours on ``paths`` (one core, best of RATIO_ROUNDS): CPU ms each and the ratio."""
    chosen = {name: methods[name] for name in ("imagehash", "ours_phash")}
    timings = time_files(paths, chosen, RATIO_ROUNDS)
    return {
        "imagehash_cpu_ms": 1e3 * timings["imagehash"].cpu_s,
        "ours_cpu_ms": 1e3 * timings["ours_phash"].cpu_s,
        "ratio_cpu": timings["imagehash"].cpu_s / timings["ours_phash"].cpu_s,
    }


def _bits_per_pixel(entries: list[CorpusEntry]) -> float:
    return float(np.mean([8 * e.bytes / (e.width * e.height) for e in entries]))


def per_quality(
    paths: list[Path], quality: int, methods: dict[str, Callable[[Path], object]]
) -> dict[str, Any]:
    """The ratio on ``paths`` re-encoded at one JPEG quality."""
    folder = work_dir("dedup", f"quality_{quality}")
    encoded, pixels = [], 0
    for path in paths:
        with Image.open(path) as image:
            out = folder / path.name
            image.save(out, "JPEG", quality=quality)
            encoded.append(out)
            pixels += image.width * image.height
    return {
        "quality": quality,
        "files": len(encoded),
        "bits_per_pixel_mean": 8 * sum(p.stat().st_size for p in encoded) / pixels,
        **_ratio(encoded, methods),
    }


def measure_hashing(options: Options) -> dict[str, Any]:
    """Time each hashing method over the same files on one core; best round per method."""
    entries = load_corpus(
        WORK / "dedup" / f"photos_seed{options.seed}",
        options.images,
        options.seed,
        PHOTOS,
        os.cpu_count() or 1,
    )
    paths = [e.path for e in entries]
    methods = file_methods()
    per_file = time_files(paths, methods, options.rounds)
    stored = [stored_image(path.read_bytes(), IMAGE)[0] for path in paths]
    per_stored = time_stored(stored, options.rounds)
    per_source = {}
    for source in sorted({e.source for e in entries}):
        chosen = [e for e in entries if e.source == source]
        per_source[source] = {
            "files": len(chosen),
            "bits_per_pixel_mean": _bits_per_pixel(chosen),
            **_ratio([e.path for e in chosen], methods),
        }
    theirs, ours = per_file["imagehash"], per_file["ours_phash"]
    result = {
        "files": len(paths),
        "megapixels_mean": float(np.mean([e.megapixels for e in entries])),
        "bytes_mean": float(np.mean([e.bytes for e in entries])),
        "bits_per_pixel_mean": _bits_per_pixel(entries),
        "photos": sum(e.source == PHOTO for e in entries),
        "rounds": options.rounds,
        "image_options": {"image_size": IMAGE.image_size, "resize_mode": IMAGE.resize_mode.value},
        "extension_built": extension_built(),
        "seconds_per_image": {name: asdict(t) for name, t in per_file.items()},
        "seconds_per_stored_picture": {name: asdict(t) for name, t in per_stored.items()},
        "ratio_cpu": theirs.cpu_s / ours.cpu_s,
        "ratio_wall": theirs.wall_s / ours.wall_s,
        "ratio_hash_image_cpu": theirs.cpu_s / per_file["ours_hash_image"].cpu_s,
        "ceiling_cpu": theirs.cpu_s / per_file["decode_floor"].cpu_s,
        "ours_over_decode_floor_cpu": ours.cpu_s / per_file["decode_floor"].cpu_s,
        "bits": check_bits(paths, stored),
        "per_source": per_source,
        "per_quality": [per_quality(paths[:30], q, methods) for q in options.qualities],
        "pillow": Image.__version__,
    }
    if extension_built():
        result["ratio_numpy_cpu"] = theirs.cpu_s / per_file["ours_phash_numpy"].cpu_s
        result["extension_speedup_stored_cpu"] = (
            per_stored["stored_phash_numpy"].cpu_s / per_stored["stored_phash"].cpu_s
        )
    return result


def format_hashing(result: dict[str, Any]) -> str:
    """The hashing tables and ratios."""
    lines = [
        f"Hashing {result['files']} JPEGs ({result['megapixels_mean']:.2f} MP, "
        f"{result['bytes_mean'] / 1024:.0f} KB, {result['bits_per_pixel_mean']:.2f} bits/pixel on average, "
        f"{result['photos']} from photographs), one core, file read + decode + hash, best of "
        f"{result['rounds']} rounds; stored pictures: {result['image_options']['image_size']} px, "
        f"{result['image_options']['resize_mode']}",
    ]

    def rows(timings: dict[str, dict[str, float]], labels: dict[str, str]) -> list[tuple[str, ...]]:
        return [
            (
                label,
                f"{1e3 * timings[name]['cpu_s']:.2f}",
                f"{1e3 * timings[name]['wall_s']:.2f}",
                f"{1 / timings[name]['cpu_s']:.1f}",
            )
            for name, label in labels.items()
            if name in timings
        ]

    columns = ("method", "CPU ms/img", "wall ms/img", "img/s (CPU)")
    lines.append(text_table(columns, rows(result["seconds_per_image"], FILE_LABELS)))
    lines.append("")
    lines.append(text_table(columns, rows(result["seconds_per_stored_picture"], STORED_LABELS)))
    lines.append("")
    lines.append(
        f"imagehash / ours: {result['ratio_cpu']:.2f}x CPU, {result['ratio_wall']:.2f}x wall; "
        f"imagehash / hash_image {result['ratio_hash_image_cpu']:.2f}x CPU; ceiling of any pHash on "
        f"libjpeg-turbo's 1/8 decode (imagehash / that decode) {result['ceiling_cpu']:.2f}x; "
        f"ours = {result['ours_over_decode_floor_cpu']:.2f} x that decode"
    )
    if result["extension_built"]:
        lines.append(
            f"without the C extension: imagehash / ours {result['ratio_numpy_cpu']:.2f}x CPU; the extension "
            f"makes the pHash of a stored picture {result['extension_speedup_stored_cpu']:.2f}x faster"
        )
    else:
        lines.append("the C extension pipeline.image._phash is not built: ours ran its numpy path")
    quality_rows = [
        (
            f"quality {q['quality']}",
            q["files"],
            f"{q['bits_per_pixel_mean']:.2f}",
            f"{q['imagehash_cpu_ms']:.2f}",
            f"{q['ours_cpu_ms']:.2f}",
            f"{q['ratio_cpu']:.2f}x",
        )
        for q in result["per_quality"]
    ]
    source_rows = [
        (
            source,
            s["files"],
            f"{s['bits_per_pixel_mean']:.2f}",
            f"{s['imagehash_cpu_ms']:.2f}",
            f"{s['ours_cpu_ms']:.2f}",
            f"{s['ratio_cpu']:.2f}x",
        )
        for source, s in result["per_source"].items()
    ]
    lines.append("")
    lines.append(
        text_table(
            ("files", "count", "bits/pixel", "imagehash CPU ms", "ours CPU ms", "ratio"),
            quality_rows + source_rows,
        )
    )
    bits = result["bits"]
    lines.append(
        f"bits: exact mode identical to imagehash {bits['exact_mode_identical_to_imagehash']}; C extension "
        f"identical to numpy {bits['extension_identical_to_numpy']}; fast identical to exact on the stored "
        f"pictures {bits['fast_identical_to_exact_on_stored']}; stored picture's pHash vs imagehash of "
        f"the original: mean {bits['stored_vs_original_imagehash_bits_mean']:.2f} bits, max "
        f"{bits['stored_vs_original_imagehash_bits_max']}"
    )
    return "\n".join(lines)


# --------------------------------------------------------------------------- part 2: matching


def _flips(rng: np.random.Generator, count: int, low: int, high: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` XOR masks with a uniform number (low..high) of distinct random bits set."""
    bits = np.argsort(rng.random((count, 64)), axis=1)  # a random bit order per row
    flips = rng.integers(low, high + 1, count)
    chosen = np.arange(64)[None, :] < flips[:, None]
    masks = np.zeros(count, dtype=np.uint64)
    for column in range(high):
        take = chosen[:, column]
        masks[take] |= np.uint64(1) << bits[take, column].astype(np.uint64)
    return masks, flips


def scene_centres(count: int, seed: int) -> np.ndarray:
    """pHashes of rendered synthetic scenes: realistic, non-uniform cluster centres."""
    rng = random.Random(seed)
    return np.array(
        [phash(render(random_scene(rng), (160, 160), rng)) for _ in range(count)], dtype=np.uint64
    )


def make_hash_sets(options: Options) -> dict[str, Any]:
    """Benchmark and corpus hashes: uniform, planted near-duplicates, clustered; corpus shuffled."""
    rng = np.random.default_rng(options.seed)
    max_flips = max(options.max_distance, *options.also_distances)
    centres = scene_centres(options.centres, options.seed)
    n_uniform_b = options.benchmark - options.clustered_benchmark
    masks, _ = _flips(rng, options.clustered_benchmark, 0, CLUSTER_FLIPS)
    benchmark = np.concatenate(
        [
            rng.integers(0, 1 << 64, n_uniform_b, dtype=np.uint64),
            centres[rng.integers(0, options.centres, options.clustered_benchmark)] ^ masks,
        ]
    )
    planted_of = rng.integers(0, options.benchmark, options.planted)
    planted_masks, planted_flips = _flips(rng, options.planted, 0, max_flips)
    masks, _ = _flips(rng, options.clustered_corpus, 0, CLUSTER_FLIPS)
    n_uniform_c = options.corpus - options.planted - options.clustered_corpus
    corpus = np.concatenate(
        [
            rng.integers(0, 1 << 64, n_uniform_c, dtype=np.uint64),
            benchmark[planted_of] ^ planted_masks,
            centres[rng.integers(0, options.centres, options.clustered_corpus)] ^ masks,
        ]
    )
    order = rng.permutation(options.corpus)
    position = np.empty_like(order)
    position[order] = np.arange(options.corpus)
    return {
        "benchmark": benchmark,
        "corpus": corpus[order],
        "planted_rows": position[n_uniform_c : n_uniform_c + options.planted],  # where they went
        "planted_of": planted_of,
        "planted_flips": planted_flips,
    }


def run_ours(benchmark: np.ndarray, corpus: np.ndarray, d: int) -> dict[str, Any]:
    """Build a HammingIndex over the benchmark hashes and search every corpus hash (one thread)."""
    cpu, wall = time.process_time(), time.perf_counter()
    plan = plan_bands(benchmark.size, corpus.size, d)  # as the dedup job plans it, knowing both sizes
    index = HammingIndex(benchmark.view(np.int64), d, plan)  # signed, as stored in parquet
    build_cpu, build_wall = time.process_time() - cpu, time.perf_counter() - wall
    q, i, dist = index.search(corpus.view(np.int64))
    total_cpu, total_wall = time.process_time() - cpu, time.perf_counter() - wall
    return {
        "pairs": (q, i, dist),
        "plan": {"bands": [list(b) for b in index.plan.bands], "radius": index.plan.radius},
        "index_mb": index.nbytes / 2**20,
        "build_wall_s": build_wall,
        "build_cpu_s": build_cpu,
        "wall_s": total_wall,
        "cpu_s": total_cpu,
        "matches": int(q.size),
    }


def faiss_available() -> bool:
    """True when ``faiss`` (faiss-cpu, optional) can be imported."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def run_faiss(benchmark: np.ndarray, queries: np.ndarray, d: int, threads: int) -> dict[str, Any]:
    """IndexBinaryFlat over the benchmark hashes, range_search of ``queries`` within d."""
    import faiss

    faiss.omp_set_num_threads(threads)
    cpu, wall = time.process_time(), time.perf_counter()
    index = faiss.IndexBinaryFlat(64)
    index.add(np.ascontiguousarray(benchmark).view(np.uint8).reshape(-1, 8))
    lims, distances, ids = index.range_search(
        np.ascontiguousarray(queries).view(np.uint8).reshape(-1, 8), d + 1
    )
    cpu_s, wall_s = time.process_time() - cpu, time.perf_counter() - wall
    q = np.repeat(np.arange(queries.size, dtype=np.int64), np.diff(lims).astype(np.int64))
    order = np.lexsort((ids, q))
    return {
        "pairs": (q[order], ids[order].astype(np.int64), distances[order].astype(np.uint8)),
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        "faiss": faiss.__version__,
    }


def compare_with_faiss(
    options: Options, benchmark: np.ndarray, corpus: np.ndarray, d: int, pairs: tuple[np.ndarray, ...]
) -> dict[str, Any]:
    """FAISS on the first --faiss-fraction of the corpus, extrapolated; identical matches asserted."""
    n_faiss = max(1, round(options.faiss_fraction * corpus.size))
    theirs = run_faiss(benchmark, corpus[:n_faiss], d, options.faiss_threads)
    log.info("d=%d faiss on %d queries: %.1f s wall", d, n_faiss, theirs["wall_s"])
    q, i, dist = pairs
    within = q < n_faiss
    identical = all(
        np.array_equal(a, b)
        for a, b in zip((q[within], i[within], dist[within]), theirs.pop("pairs"), strict=True)
    )
    if not identical:
        raise RuntimeError(f"d={d}: our matches differ from FAISS's on the first {n_faiss} corpus hashes")
    scale = corpus.size / n_faiss
    return {
        **theirs,
        "queries": n_faiss,
        "threads": options.faiss_threads,
        "extrapolated_wall_s": theirs["wall_s"] * scale,
        "extrapolated_cpu_s": theirs["cpu_s"] * scale,
        "identical_on_faiss_queries": identical,
        "matches_on_faiss_queries": int(within.sum()),
    }


def measure_matching(options: Options) -> dict[str, Any]:
    """Ours on the whole corpus, FAISS (when installed) on a fraction; planted pairs asserted."""
    started = time.perf_counter()
    sets = make_hash_sets(options)
    log.info("hash sets ready in %.1f s", time.perf_counter() - started)
    benchmark, corpus = sets["benchmark"], sets["corpus"]
    with_faiss = faiss_available()
    if not with_faiss:
        log.warning("faiss is not installed (.venv/bin/pip install faiss-cpu): measuring ours alone")
    results = []
    for d in (options.max_distance, *options.also_distances):
        ours = run_ours(benchmark, corpus, d)
        log.info(
            "d=%d ours: %.1f s wall (%d matches, plan %s)", d, ours["wall_s"], ours["matches"], ours["plan"]
        )
        pairs = ours.pop("pairs")
        q, i, _ = pairs
        # Every planted near-duplicate within d must be among our matches.
        planted = sets["planted_flips"] <= d
        wanted = sets["planted_rows"][planted] * benchmark.size + sets["planted_of"][planted]
        found = int(np.isin(wanted, q * benchmark.size + i).sum())
        if found != int(planted.sum()):
            raise RuntimeError(f"d={d}: {int(planted.sum()) - found} planted near-duplicates were missed")
        row: dict[str, Any] = {
            "max_distance": d,
            "ours": ours,
            "planted_within_d_found": f"{found}/{int(planted.sum())}",
            "faiss": None,
        }
        if with_faiss:
            theirs = compare_with_faiss(options, benchmark, corpus, d, pairs)
            row["faiss"] = theirs
            row["ratio_wall"] = theirs["extrapolated_wall_s"] / ours["wall_s"]
            row["ratio_cpu"] = theirs["extrapolated_cpu_s"] / ours["cpu_s"]
        results.append(row)
    return {"corpus": corpus.size, "benchmark": benchmark.size, "results": results}


def format_matching(result: dict[str, Any], options: Options) -> str:
    """The matching table."""
    share = options.faiss_fraction
    scope = f"measured on {share:.1%} of the corpus, extrapolated linearly" if share < 1 else "whole corpus"
    header = (
        f"{result['corpus']:,} corpus x {result['benchmark']:,} benchmark hashes; ours: 1 thread, "
        f"index build included; FAISS IndexBinaryFlat: {options.faiss_threads} threads, {scope}"
    )
    columns = ("d", "plan", "index MB", "ours CPU s", "wall s", "(build)", "FAISS CPU s", "wall s")
    columns += ("ratio CPU", "wall", "matches", "identical", "planted found")
    rows = []
    for r in result["results"]:
        ours, faiss = r["ours"], r["faiss"]
        theirs: tuple[str, ...] = ("-",) * 5
        if faiss is not None:
            theirs = (
                f"{faiss['extrapolated_cpu_s']:.0f}",
                f"{faiss['extrapolated_wall_s']:.0f}",
                f"{r['ratio_cpu']:.1f}x",
                f"{r['ratio_wall']:.0f}x",
                f"{faiss['identical_on_faiss_queries']} ({faiss['matches_on_faiss_queries']:,} pairs)",
            )
        rows.append(
            (
                r["max_distance"],
                f"{len(ours['plan']['bands'])} x r{ours['plan']['radius']}",
                f"{ours['index_mb']:.0f}",
                f"{ours['cpu_s']:.1f}",
                f"{ours['wall_s']:.1f}",
                f"{ours['build_wall_s']:.1f}",
                *theirs[:4],
                f"{ours['matches']:,}",
                theirs[4],
                r["planted_within_d_found"],
            )
        )
    return header + "\n" + text_table(columns, rows, align="r" * 11 + "ll")


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    """Run the parts asked for; print their tables and save the raw results."""
    options = parse_options(argv)
    setup_logging()
    work_dir()
    machine = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "load_average_at_start": os.getloadavg(),
    }
    summaries = []
    if options.part in ("hash", "all"):
        hashing = measure_hashing(options)
        out = WORK / "dedup_hash_results.json"
        out.write_text(json.dumps({"options": asdict(options), "machine": machine, **hashing}, indent=2))
        summaries.append(format_hashing(hashing) + f"\n(raw: {shown(out)})")
    if options.part in ("match", "all"):
        matching = measure_matching(options)
        out = WORK / "dedup_match_results.json"
        out.write_text(json.dumps({"options": asdict(options), "machine": machine, **matching}, indent=2))
        summaries.append(format_matching(matching, options) + f"\n(raw: {shown(out)})")
    print("\n\n".join(summaries))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
