"""Generating the synthetic world on disk and the URL lists that point at it.

Layout of a world folder::

    images/NNNNNN.jpg      corpus images (served by the demo server)
    benchmark/NNNNNN.jpg   benchmark images; some have planted near-duplicates in images/
    world.parquet          one row per corpus image: true caption, label, served caption, flags
    world.json             generation parameters and the class list

The URL lists (``urls.parquet`` in LAION's column names, ``urls.tsv`` in CC3M's headerless
``caption<TAB>url`` layout) are written separately, once the server's address is known.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageEnhance, ImageFilter
from tqdm import tqdm

from pipeline.cli_options import option
from pipeline.errors import UserInputError
from pipeline.synthetic.junk import junk_caption, junk_caption_stream
from pipeline.synthetic.scenes import LANGUAGES, all_labels, caption_language, label_zh, random_scene, render
from pipeline.synthetic.watermark import (
    STYLES,
    add_watermark,
    watermark_caption,
    watermark_caption_stream,
    watermark_stream,
)

log = logging.getLogger(__name__)

# Server-side faults, one URL path prefix each (see pipeline.synthetic.server).
FAULTS = (
    "404",
    "410",
    "500",
    "503_then_ok",
    "429_then_ok",
    "slow",
    "reset",
    "truncated",
    "wrong_type",
    "html_as_jpeg",
    "svg_as_jpeg",
    "huge",
    "corrupt",
    "empty",
    "redirect",
    "redirect_loop",
    "redirect_private",
    "optout",
    "gzip_bomb",
)


@dataclass(frozen=True)
class WorldSpec:
    """Parameters of a synthetic world."""

    images: int = option(1000, help="pictures in the corpus")
    seed: int = option(0, help="random seed (the same seed draws the same world)")
    mismatch_fraction: float = option(0.2, help="share of captions deliberately swapped")
    benchmark_images: int = option(50, help="benchmark pictures drawn beside the corpus")
    planted_duplicates: int = option(20, help="transformed copies of benchmark pictures put in the corpus")
    min_side: int = option(256, help="smallest width of a picture, in pixels")
    max_side: int = option(640, help="largest width and height of a picture, in pixels")
    quality: int = option(90, help="JPEG quality of the served files")
    # Issue 18 (probes): a planted class, recorded in world.parquet's `watermarked` column.
    watermark_fraction: float = option(
        0.0, help="share of corpus pictures given a semi-transparent text watermark (a class for probes)"
    )
    watermark_style: str = option(
        "tiled",
        choices=STYLES,
        help="tiled: thin repeated text; band: one bold band with a large word (seen by a 64 px model)",
    )
    watermark_caption_fraction: float = option(
        0.0,
        help="share of watermarked pictures whose captions say so, as stock photos' alt texts do (a "
        "phrase such as 'stock photo preview with watermark' added to the caption; Chinese captions "
        "get a Chinese phrase): what lets a trained scorer keep the watermark in its image embedding",
    )
    junk_caption_fraction: float = option(
        0.0,
        help="share of pictures whose caption is junk alt text instead of a description (a file name, "
        "a URL, a price, noise, 'click to enlarge'): what build_shards' caption rules drop; recorded "
        "in world.parquet's junk_caption column",
    )
    language: str = option(
        "en",
        choices=LANGUAGES,
        help="caption language: en, zh (Chinese), bilingual (each picture at random in English or "
        "Chinese) or mixed (at random in English, Chinese, or Chinese with the colour and shape in "
        "English); the pictures are the same for every language",
    )

    def __post_init__(self) -> None:
        if self.language not in LANGUAGES:
            raise UserInputError(f"--language must be one of {LANGUAGES}, got {self.language!r}")
        if not 0 <= self.watermark_caption_fraction <= 1:
            raise UserInputError(
                f"--watermark-caption-fraction must be in [0, 1], got {self.watermark_caption_fraction}"
            )
        if not 0 <= self.junk_caption_fraction <= 1:
            raise UserInputError(
                f"--junk-caption-fraction must be in [0, 1], got {self.junk_caption_fraction}"
            )


def held_out_spec(images: int = 200, seed: int = 1234, language: str = "en") -> WorldSpec:
    """A clean labelled world for evaluation: matched captions only, no benchmark, no copies."""
    return WorldSpec(
        language=language,
        images=images,
        seed=seed,
        mismatch_fraction=0.0,
        benchmark_images=0,
        planted_duplicates=0,
        min_side=96,
        max_side=192,
    )


def generate_world(out: str | Path, spec: WorldSpec) -> Path:
    """Write a world folder; returns its path."""
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "benchmark").mkdir(parents=True, exist_ok=True)
    rng = random.Random(spec.seed)
    # Caption languages come from their own generator: a world draws the same pictures in every language.
    language_rng = random.Random(f"{spec.seed}-language")
    benchmark = []
    for i in range(spec.benchmark_images):
        scene = random_scene(rng)
        image = render(scene, _size(rng, spec), rng)
        image.save(out / "benchmark" / f"{i:06d}.jpg", quality=spec.quality)
        benchmark.append((scene, image))
    planted = rng.sample(range(spec.images), min(spec.planted_duplicates, spec.images, len(benchmark)))
    planted_source = dict(zip(planted, rng.sample(range(len(benchmark)), len(planted)), strict=True))
    rows = []
    marks = watermark_stream(spec.seed)
    # Its own stream: the pictures and the other captions are those of the world without it.
    mark_captions = watermark_caption_stream(spec.seed)
    junk = junk_caption_stream(spec.seed)
    for i in tqdm(range(spec.images), desc="drawing synthetic world", unit=" img", mininterval=2):
        if i in planted_source:
            scene, original = benchmark[planted_source[i]]
            image = near_duplicate(original, rng)
        else:
            scene = random_scene(rng)
            image = render(scene, _size(rng, spec), rng)
        watermarked = spec.watermark_fraction > 0 and marks.random() < spec.watermark_fraction
        if watermarked:
            image = add_watermark(image, marks, spec.watermark_style)
        image.save(out / "images" / f"{i:06d}.jpg", quality=spec.quality)
        language = caption_language(spec.language, language_rng)
        caption = scene.caption_in(language)
        matched = rng.random() >= spec.mismatch_fraction
        if not matched:
            other = random_scene(rng)
            while other.label == scene.label:
                other = random_scene(rng)
            caption = other.caption_in(language)
        true_caption = scene.caption_in(language)
        says_so = watermarked and spec.watermark_caption_fraction > 0
        if says_so and mark_captions.random() < spec.watermark_caption_fraction:
            caption, true_caption = watermark_caption([caption, true_caption], language, mark_captions)
        junk_kind = None
        if spec.junk_caption_fraction > 0 and junk.random() < spec.junk_caption_fraction:
            junk_kind, caption = junk_caption(junk)
            matched = False  # the pair describes nothing
        extra = {} if spec.language == "en" else {"language": language}
        rows.append(
            {
                "id": i,
                "file": f"images/{i:06d}.jpg",
                "true_caption": true_caption,
                "caption": caption,
                "label": scene.label,
                "matched": matched,
                "width": image.width,
                "height": image.height,
                "planted_benchmark": planted_source.get(i),
                **extra,
            }
        )
        if spec.watermark_fraction > 0:
            rows[-1]["watermarked"] = watermarked
        if spec.junk_caption_fraction > 0:
            rows[-1]["junk_caption"] = junk_kind
    pq.write_table(pa.Table.from_pylist(rows), out / "world.parquet")
    (out / "world.json").write_text(json.dumps(world_description(spec), indent=2, ensure_ascii=False))
    log.info(
        "synthetic world: %d images, %d benchmark, %d planted copies in %s",
        spec.images,
        len(benchmark),
        len(planted),
        out,
    )
    return out


def world_description(spec: WorldSpec) -> dict:
    """What ``world.json`` holds: the spec and the class names (English; for a Chinese or mixed world
    also ``labels_zh``, the same classes in Chinese, for zero-shot prompts in Chinese).

    An English world without watermarks has the file it had before languages and watermarks
    existed (no ``language``, ``watermark_fraction`` or ``watermark_style`` key), so worlds and
    golden records drawn before stay byte-identical; so do tiled-watermark worlds (no style key)
    and worlds whose captions do not mention the watermark (no ``watermark_caption_fraction`` key)
    or have no junk captions (no ``junk_caption_fraction`` key).
    """
    recorded = asdict(spec)
    if spec.watermark_fraction == 0:
        del recorded["watermark_fraction"]
    if spec.watermark_style == "tiled":
        del recorded["watermark_style"]
    if spec.watermark_caption_fraction == 0:
        del recorded["watermark_caption_fraction"]
    if spec.junk_caption_fraction == 0:
        del recorded["junk_caption_fraction"]
    if spec.language == "en":
        del recorded["language"]
        return {"spec": recorded, "labels": all_labels()}
    return {"spec": recorded, "labels": all_labels(), "labels_zh": [label_zh(x) for x in all_labels()]}


def near_duplicate(image: Image.Image, rng: random.Random) -> Image.Image:
    """A mild transform of ``image``: resize, blur or colour shift (what dedup must catch)."""
    kind = rng.choice(("resize", "blur", "colour"))
    if kind == "resize":
        return image.resize(
            (max(32, image.width // 2), max(32, image.height // 2)), Image.Resampling.BILINEAR
        )
    if kind == "blur":
        return image.filter(ImageFilter.GaussianBlur(1.5))
    return ImageEnhance.Brightness(ImageEnhance.Color(image).enhance(1.3)).enhance(1.1)


def _size(rng: random.Random, spec: WorldSpec) -> tuple[int, int]:
    width = rng.randint(spec.min_side, spec.max_side)
    aspect = rng.uniform(0.6, 1.6)
    return width, max(spec.min_side // 2, min(spec.max_side, int(width / aspect)))


def write_url_lists(
    world: str | Path,
    base_url: str,
    faults_per_kind: int = 0,
    seed: int = 0,
    bad_rows: bool = False,
    out: str | Path | None = None,
) -> dict[str, Path]:
    """Write ``urls.parquet`` (LAION columns) and ``urls.tsv`` (CC3M) for a served world.

    ``faults_per_kind`` rows per fault in :data:`FAULTS` get a URL that makes the server
    misbehave that way; the ``fault`` column says which. ``bad_rows`` appends input rows that
    ingest must reject or flag (no URL, bad scheme, empty caption, repeated pair and URL).
    The lists go to ``out`` (default: the world folder). Returns the paths written.
    """
    world = Path(world)
    table = pq.read_table(world / "world.parquet").to_pylist()
    rng = random.Random(seed)
    faulty = rng.sample(range(len(table)), min(len(table), faults_per_kind * len(FAULTS)))
    fault_of = {row: FAULTS[i % len(FAULTS)] for i, row in enumerate(faulty)}
    base = base_url.rstrip("/")
    rows = []
    for row in table:
        fault = fault_of.get(row["id"])
        path = f"fault/{fault}/{row['file']}" if fault else row["file"]
        rows.append(
            {
                "URL": f"{base}/{path}",
                "TEXT": row["caption"],
                "WIDTH": row["width"],
                "HEIGHT": row["height"],
                "label": row["label"],
                "matched": row["matched"],
                "fault": fault,
            }
        )
        if "watermarked" in row:
            rows[-1]["watermarked"] = row["watermarked"]
    if bad_rows and rows:
        first = rows[0]
        extra = {"WIDTH": None, "HEIGHT": None, "label": None, "matched": None}
        rows += [
            {**extra, "URL": None, "TEXT": "a row without a URL", "fault": "bad:missing_url"},
            {**extra, "URL": "ftp://example.invalid/x.jpg", "TEXT": "ftp", "fault": "bad:unsupported_scheme"},
            {**extra, "URL": "not a url", "TEXT": "garbage", "fault": "bad:invalid_url"},
            {**extra, "URL": first["URL"], "TEXT": "  ", "fault": "bad:empty_caption"},
            {**first, "fault": "bad:duplicate_pair"},
            {**first, "TEXT": "the same image, another caption", "fault": "bad:duplicate_url"},
        ]
    folder = Path(out) if out is not None else world
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"parquet": folder / "urls.parquet", "tsv": folder / "urls.tsv"}
    pq.write_table(pa.Table.from_pylist(rows), paths["parquet"])
    with open(paths["tsv"], "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(f"{row['TEXT'] or ''}\t{row['URL'] or ''}\n")
    return paths
