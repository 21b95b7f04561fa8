"""Dedup speed: our pHash against imagehash, and our exact Hamming matching against FAISS.

    .venv/bin/pip install faiss-cpu        # once, benchmark only (not a corpusforge dependency)
    .venv/bin/python benchmarks/dedup.py [--part hash|match|all] [--max-distance 8] ...

Part ``hash`` (single core: the process is pinned to one CPU while it runs):

1. builds (once, cached in benchmarks/_work/dedup/photos_v1_<N>) --images photo-like JPEGs of
   1-2 megapixels: half from scikit-image's bundled sample photographs (random crop, resized up,
   sensor-like grain), half synthetic scenes (pipeline.synthetic.scenes, blurred, unevenly lit,
   textured, grainy), quality 80-92, so that files have photo-like sizes;
2. for --rounds rounds, interleaved, times each method over all files, file read and decode
   included: ``imagehash.phash(PIL.Image.open(path))``, ours
   ``phash_bytes(path.read_bytes())`` (fast mode: the C extension ``_jpegdc`` for these baseline
   JPEGs), the same function with the extension switched off (its Pillow path, what ours was
   before the extension), and two references: libjpeg-turbo's 1/8-scale greyscale decode
   (``draft("L", 1/8 scale)`` + ``load()``, what any pHash built on libjpeg-turbo must pay) and
   imagehash's full decode;
   the best round of each counts, in CPU seconds of this thread (robust to other processes
   on a shared machine) and in wall seconds;
3. checks the fast mode's distance to imagehash on these files, and that the exact mode is
   bit-identical; times both again on the first 30 files re-encoded at each of --qualities
   (the ratio depends on how much entropy-coded data a pixel carries); prints the table and
   writes benchmarks/_work/dedup_hash_results.json.

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
   benchmarks/_work/dedup_match_results.json.

Nothing leaves the machine; FAISS is imported only here.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import math
import os
import platform
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / "_work"
PHOTOS_VERSION = 1  # bump when the generator changes so cached photos are rebuilt
TARGET_HASH_RATIO = 10.0
CLUSTER_FLIPS = 12

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
        description="Dedup speed: pHash vs imagehash, Hamming matching vs FAISS (see the module docstring).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--part", choices=("hash", "match", "all"), default="all", help="what to measure")
    parser.add_argument("--images", type=int, default=200, help="JPEGs of 1-2 MP for the hashing part")
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


# --------------------------------------------------------------------------- photos


def _sample_photos() -> list[Any]:
    """scikit-image's bundled colour photographs of at least 256 px (no download)."""
    import skimage
    from PIL import Image

    folder = Path(skimage.__file__).parent / "data"
    photos = []
    for path in sorted([*folder.glob("*.png"), *folder.glob("*.jpg")]):
        with Image.open(path) as image:
            if image.mode in ("RGB", "RGBA") and min(image.size) >= 256 and "chessboard" not in path.name:
                photos.append(image.convert("RGB"))
    return photos


def make_photo(index: int, seed: int, samples: list[Any]) -> tuple[bytes, str, int, int]:
    """A photo-like JPEG of 1-2 MP: a sample photograph or a synthetic scene, with grain."""
    from PIL import Image, ImageChops, ImageFilter

    from pipeline.synthetic.scenes import random_scene, render

    rng = random.Random(seed * 1_000_003 + index)
    nrng = np.random.default_rng(seed * 1_000_003 + index)
    pixels = rng.uniform(1.0e6, 2.0e6)
    aspect = 2 ** rng.uniform(-0.6, 0.6)
    width = round(math.sqrt(pixels * aspect))
    height = round(pixels / width)
    if index % 2 == 0:
        source = "sample photo"
        photo = samples[(index // 2) % len(samples)]
        w, h = photo.size
        cw, ch = round(w * rng.uniform(0.6, 1.0)), round(h * rng.uniform(0.6, 1.0))
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        image = photo.crop((x, y, x + cw, y + ch)).resize((width, height), Image.Resampling.BICUBIC)
    else:
        source = "synthetic scene"
        image = render(random_scene(rng), (width, height), rng)
        image = image.filter(ImageFilter.BoxBlur(rng.uniform(0.5, 2.0)))
        light = nrng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        image = Image.blend(
            image, Image.fromarray(light).resize((width, height), Image.Resampling.BICUBIC), 0.3
        )
        texture = nrng.integers(96, 160, (max(2, height // 24), max(2, width // 24), 3), dtype=np.uint8)
        texture_image = Image.fromarray(texture).resize((width, height), Image.Resampling.BILINEAR)
        image = ImageChops.add(image, texture_image, 1.0, -128)
    # Sensor-like grain: without it, enlarged or drawn pictures compress far better than photos.
    grain = np.clip(128 + nrng.normal(0, rng.uniform(2.0, 6.0), (height, width, 3)), 0, 255)
    image = ImageChops.add(image, Image.fromarray(grain.astype(np.uint8)), 1.0, -128)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=rng.randint(80, 92))
    return out.getvalue(), source, width, height


def build_photos(count: int, seed: int) -> list[dict[str, Any]]:
    """Make sure the cached folder holds ``count`` photos; return their index entries."""
    from tqdm import tqdm

    folder = WORK / "dedup" / f"photos_v{PHOTOS_VERSION}_seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    index_path = folder / "index.json"
    entries: dict[int, dict[str, Any]] = {}
    if index_path.exists():
        entries = {e["index"]: e for e in json.loads(index_path.read_text())}
    missing = [i for i in range(count) if i not in entries or not (folder / f"{i:05d}.jpg").exists()]
    if missing:
        samples = _sample_photos()
        for i in tqdm(missing, desc="photos", unit="img"):
            data, source, width, height = make_photo(i, seed, samples)
            path = folder / f"{i:05d}.jpg"
            path.with_suffix(".tmp").write_bytes(data)
            path.with_suffix(".tmp").replace(path)
            entries[i] = {"index": i, "path": str(path), "source": source, "width": width, "height": height}
            entries[i]["bytes"] = len(data)
        index_path.write_text(json.dumps([entries[i] for i in sorted(entries)]))
    return [entries[i] for i in range(count)]


# --------------------------------------------------------------------------- part 1: hashing


def _hash_methods() -> dict[str, Callable[[Path], Any]]:
    import imagehash
    from PIL import Image

    import pipeline.image.phash as phash_module
    from pipeline.image.phash import phash_bytes

    if phash_module._jpegdc is None:
        raise SystemExit("the C extension pipeline.image._jpegdc is not built: run `make venv` first")

    def imagehash_phash(path: Path) -> int:
        return int(str(imagehash.phash(Image.open(path))), 16)

    def ours(path: Path) -> int:
        return phash_bytes(path.read_bytes())

    def ours_pillow_path(path: Path) -> int:
        extension, phash_module._jpegdc = phash_module._jpegdc, None
        try:
            return phash_bytes(path.read_bytes())
        finally:
            phash_module._jpegdc = extension

    def floor(path: Path) -> tuple[int, int]:
        with Image.open(path) as image:
            image.draft("L", (64, 64))
            image.load()
            return image.size

    def full_decode(path: Path) -> tuple[int, int]:
        with Image.open(path) as image:
            image.load()
            return image.size

    return {
        "imagehash": imagehash_phash,
        "ours": ours,
        "ours_pillow_path": ours_pillow_path,
        "decode_floor": floor,
        "full_decode": full_decode,
    }


def measure_hashing(options: Options) -> dict[str, Any]:
    """Time each hashing method over the same files on one core; best round per method."""
    from PIL import Image

    from pipeline.image.phash import phash_bytes

    entries = build_photos(options.images, options.seed)
    paths = [Path(e["path"]) for e in entries]
    methods = _hash_methods()
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[-1]})  # single core: no method gets a second one
    try:
        for path in paths[:5]:  # warm the page cache and the imports
            for method in methods.values():
                method(path)
        times: dict[str, dict[str, list[float]]] = {name: {"cpu": [], "wall": []} for name in methods}
        for round_index in range(options.rounds):
            for name, method in methods.items():
                load = os.getloadavg()[0]
                cpu, wall = time.thread_time(), time.perf_counter()
                for path in paths:
                    method(path)
                times[name]["cpu"].append(time.thread_time() - cpu)
                times[name]["wall"].append(time.perf_counter() - wall)
                log.info(
                    "round %d %-12s %.2f ms/image CPU (load average %.1f)",
                    round_index + 1,
                    name,
                    1e3 * times[name]["cpu"][-1] / len(paths),
                    load,
                )
    finally:
        os.sched_setaffinity(0, cpus)
    per_image = {
        name: {kind: min(values) / len(paths) for kind, values in t.items()} for name, t in times.items()
    }
    # Accuracy on the same files: the fast mode's distance to imagehash, and the exact mode.
    distances, exact_equal, same_as_pillow_path = [], 0, 0
    by_source: dict[str, list[int]] = {}
    for entry, path in zip(entries, paths, strict=True):
        data = path.read_bytes()
        theirs = methods["imagehash"](path)
        ours_hash = phash_bytes(data)
        distance = bin(ours_hash ^ theirs).count("1")
        distances.append(distance)
        same_as_pillow_path += ours_hash == methods["ours_pillow_path"](path)
        by_source.setdefault(entry["source"], []).append(distance)
        exact_equal += phash_bytes(data, exact=True) == theirs
    per_source = {}
    for source in sorted({e["source"] for e in entries}):
        chosen = [p for e, p in zip(entries, paths, strict=True) if e["source"] == source]
        per_source[source] = _source_ratio(chosen, methods, entries, source, by_source[source])
    ours, theirs = per_image["ours"], per_image["imagehash"]
    return {
        "files": len(paths),
        "megapixels_mean": float(np.mean([e["width"] * e["height"] for e in entries]) / 1e6),
        "bytes_mean": float(np.mean([e["bytes"] for e in entries])),
        "bits_per_pixel_mean": float(np.mean([8 * e["bytes"] / (e["width"] * e["height"]) for e in entries])),
        "rounds": options.rounds,
        "seconds_per_image": per_image,
        "ratio_cpu": theirs["cpu"] / ours["cpu"],
        "ratio_wall": theirs["wall"] / ours["wall"],
        "ratio_pillow_path_cpu": theirs["cpu"] / per_image["ours_pillow_path"]["cpu"],
        "ceiling_cpu": theirs["cpu"] / per_image["decode_floor"]["cpu"],
        "ours_over_floor_cpu": ours["cpu"] / per_image["decode_floor"]["cpu"],
        "fast_distance_mean": float(np.mean(distances)),
        "fast_distance_max": int(max(distances)),
        "exact_identical": f"{exact_equal}/{len(paths)}",
        "extension_identical_to_pillow_path": f"{same_as_pillow_path}/{len(paths)}",
        "per_source": per_source,
        "per_quality": [_quality_ratio(paths[:30], q, methods) for q in options.qualities],
        "target_ratio": TARGET_HASH_RATIO,
        "pillow": Image.__version__,
    }


def _source_ratio(
    paths: list[Path],
    methods: dict[str, Callable[[Path], Any]],
    entries: list[dict[str, Any]],
    source: str,
    distances: list[int],
) -> dict[str, Any]:
    """Ratio (CPU, best of 3) of imagehash and ours over one source's files."""
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[-1]})
    try:
        spent = {}
        for name in ("imagehash", "ours"):
            rounds = []
            for _ in range(3):
                start = time.thread_time()
                for path in paths:
                    methods[name](path)
                rounds.append(time.thread_time() - start)
            spent[name] = min(rounds) / len(paths)
    finally:
        os.sched_setaffinity(0, cpus)
    chosen = [e for e in entries if e["source"] == source]
    return {
        "files": len(paths),
        "bits_per_pixel_mean": float(np.mean([8 * e["bytes"] / (e["width"] * e["height"]) for e in chosen])),
        "ratio_cpu": spent["imagehash"] / spent["ours"],
        "fast_distance_mean": float(np.mean(distances)),
    }


def _quality_ratio(
    paths: list[Path], quality: int, methods: dict[str, Callable[[Path], Any]]
) -> dict[str, Any]:
    """Ratio (CPU, best of 3) on ``paths`` re-encoded at one JPEG quality, from memory."""
    from PIL import Image

    folder = WORK / "dedup" / f"quality_{quality}"
    folder.mkdir(parents=True, exist_ok=True)
    encoded, pixels = [], 0
    for path in paths:
        with Image.open(path) as image:
            out = folder / path.name
            image.save(out, "JPEG", quality=quality)
            encoded.append(out)
            pixels += image.width * image.height
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[-1]})
    try:
        spent = {}
        for name in ("imagehash", "ours"):
            rounds = []
            for _ in range(3):
                start = time.thread_time()
                for path in encoded:
                    methods[name](path)
                rounds.append(time.thread_time() - start)
            spent[name] = min(rounds) / len(encoded)
    finally:
        os.sched_setaffinity(0, cpus)
    return {
        "quality": quality,
        "files": len(encoded),
        "bits_per_pixel_mean": 8 * sum(p.stat().st_size for p in encoded) / pixels,
        "imagehash_cpu_s": spent["imagehash"],
        "ours_cpu_s": spent["ours"],
        "ratio_cpu": spent["imagehash"] / spent["ours"],
    }


def format_hashing(result: dict[str, Any]) -> str:
    """The hashing table."""
    rows = [
        f"pHash of {result['files']} JPEGs ({result['megapixels_mean']:.2f} MP, "
        f"{result['bytes_mean'] / 1024:.0f} KB, {result['bits_per_pixel_mean']:.2f} bits/pixel on average), "
        "one core, file read + decode + hash, best of "
        f"{result['rounds']} rounds",
        f"{'method':34s} {'CPU ms/img':>10s} {'wall ms/img':>11s} {'img/s (CPU)':>11s}",
    ]
    labels = {
        "imagehash": "imagehash.phash(Image.open(path))",
        "ours": "ours phash_bytes (fast)",
        "ours_pillow_path": "  ours without the C extension",
        "decode_floor": "  libjpeg-turbo 1/8 grey decode only",
        "full_decode": "  full decode only (PIL load)",
    }
    for name, label in labels.items():
        t = result["seconds_per_image"][name]
        rows.append(f"{label:34s} {1e3 * t['cpu']:10.2f} {1e3 * t['wall']:11.2f} {1 / t['cpu']:11.1f}")
    rows.append(
        f"ratio ours vs imagehash: {result['ratio_cpu']:.2f}x CPU, {result['ratio_wall']:.2f}x wall "
        f"(target {result['target_ratio']:.0f}x); without the C extension "
        f"{result['ratio_pillow_path_cpu']:.2f}x; ceiling of any pHash on libjpeg-turbo's decode "
        f"(imagehash / its 1/8 decode): {result['ceiling_cpu']:.2f}x; "
        f"ours = {result['ours_over_floor_cpu']:.2f} x that decode"
    )
    for q in result["per_quality"]:
        rows.append(
            f"  re-encoded at quality {q['quality']}: {q['files']} files, {q['bits_per_pixel_mean']:.2f} "
            f"bits/pixel, imagehash {1e3 * q['imagehash_cpu_s']:.2f} ms, "
            f"ours {1e3 * q['ours_cpu_s']:.2f} ms, ratio {q['ratio_cpu']:.2f}x CPU"
        )
    for source, s in result["per_source"].items():
        rows.append(
            f"  {source}: {s['files']} files, {s['bits_per_pixel_mean']:.2f} bits/pixel, "
            f"ratio {s['ratio_cpu']:.2f}x CPU, fast-mode distance {s['fast_distance_mean']:.2f}"
        )
    rows.append(
        f"fast mode vs imagehash: mean {result['fast_distance_mean']:.2f} bits, max "
        f"{result['fast_distance_max']}; exact mode bit-identical: {result['exact_identical']}; "
        f"C extension identical to the Pillow path: {result['extension_identical_to_pillow_path']}"
    )
    return "\n".join(rows)


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
    from pipeline.image.phash import phash
    from pipeline.synthetic.scenes import random_scene, render

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
    from pipeline.dedup.hamming import HammingIndex, plan_bands

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


def measure_matching(options: Options) -> dict[str, Any]:
    """Ours on the whole corpus, FAISS on a fraction (extrapolated), identical matches asserted."""
    started = time.perf_counter()
    sets = make_hash_sets(options)
    log.info("hash sets ready in %.1f s", time.perf_counter() - started)
    benchmark, corpus = sets["benchmark"], sets["corpus"]
    n_faiss = max(1, round(options.faiss_fraction * corpus.size))
    results = []
    for d in (options.max_distance, *options.also_distances):
        ours = run_ours(benchmark, corpus, d)
        log.info(
            "d=%d ours: %.1f s wall (%d matches, plan %s)", d, ours["wall_s"], ours["matches"], ours["plan"]
        )
        theirs = run_faiss(benchmark, corpus[:n_faiss], d, options.faiss_threads)
        log.info("d=%d faiss on %d queries: %.1f s wall", d, n_faiss, theirs["wall_s"])
        q, i, dist = ours.pop("pairs")
        within = q < n_faiss
        identical = all(
            np.array_equal(a, b)
            for a, b in zip((q[within], i[within], dist[within]), theirs.pop("pairs"), strict=True)
        )
        if not identical:
            raise RuntimeError(f"d={d}: our matches differ from FAISS's on the first {n_faiss} corpus hashes")
        # Every planted near-duplicate within d must be among our matches.
        planted = sets["planted_flips"] <= d
        pair_keys = q * benchmark.size + i
        wanted = sets["planted_rows"][planted] * benchmark.size + sets["planted_of"][planted]
        found = int(np.isin(wanted, pair_keys).sum())
        if found != int(planted.sum()):
            raise RuntimeError(f"d={d}: {int(planted.sum()) - found} planted near-duplicates were missed")
        scale = corpus.size / n_faiss
        faiss_wall, faiss_cpu = theirs["wall_s"] * scale, theirs["cpu_s"] * scale
        results.append(
            {
                "max_distance": d,
                "ours": ours,
                "faiss": {
                    **theirs,
                    "queries": n_faiss,
                    "threads": options.faiss_threads,
                    "extrapolated_wall_s": faiss_wall,
                    "extrapolated_cpu_s": faiss_cpu,
                },
                "identical_on_faiss_queries": identical,
                "matches_on_faiss_queries": int(within.sum()),
                "planted_within_d_found": f"{found}/{int(planted.sum())}",
                "ratio_wall": faiss_wall / ours["wall_s"],
                "ratio_cpu": faiss_cpu / ours["cpu_s"],
            }
        )
    return {"corpus": corpus.size, "benchmark": benchmark.size, "results": results}


def format_matching(result: dict[str, Any], options: Options) -> str:
    """The matching table."""
    share = options.faiss_fraction
    scope = f"measured on {share:.1%} of the corpus, extrapolated linearly" if share < 1 else "whole corpus"
    rows = [
        f"{result['corpus']:,} corpus x {result['benchmark']:,} benchmark hashes; ours: 1 thread, "
        f"index build included; FAISS IndexBinaryFlat: {options.faiss_threads} threads, {scope}",
        f"{'d':>3s} {'plan':>7s} {'index MB':>8s} {'ours CPU s':>10s} {'wall s':>7s} {'(build)':>7s} "
        f"{'FAISS CPU s':>11s} {'wall s':>7s} {'ratio CPU':>9s} {'wall':>5s} {'matches':>9s} identical",
    ]
    for r in result["results"]:
        ours, faiss = r["ours"], r["faiss"]
        plan = f"{len(ours['plan']['bands'])} x r{ours['plan']['radius']}"
        rows.append(
            f"{r['max_distance']:3d} {plan:>7s} {ours['index_mb']:8.0f} {ours['cpu_s']:10.1f} "
            f"{ours['wall_s']:7.1f} {ours['build_wall_s']:7.1f} {faiss['extrapolated_cpu_s']:11.0f} "
            f"{faiss['extrapolated_wall_s']:7.0f} {r['ratio_cpu']:8.1f}x {r['ratio_wall']:4.0f}x "
            f"{ours['matches']:9,d} {r['identical_on_faiss_queries']} "
            f"({r['matches_on_faiss_queries']:,} pairs; planted {r['planted_within_d_found']})"
        )
    return "\n".join(rows)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    from pipeline.logs import setup_logging

    setup_logging()
    WORK.mkdir(parents=True, exist_ok=True)
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
        summaries.append(format_hashing(hashing) + f"\n(raw: {out.relative_to(ROOT)})")
    if options.part in ("match", "all"):
        matching = measure_matching(options)
        out = WORK / "dedup_match_results.json"
        out.write_text(json.dumps({"options": asdict(options), "machine": machine, **matching}, indent=2))
        summaries.append(format_matching(matching, options) + f"\n(raw: {out.relative_to(ROOT)})")
    print("\n\n".join(summaries))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
