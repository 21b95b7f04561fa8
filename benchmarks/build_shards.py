"""build_shards against the obvious single-process script, on the same fabricated dataset.

The peer is what one would write without Spark: read every raw tar and parquet in one Python
process, apply the same rules, shuffle the kept samples in memory with the same seeded keys and
write tars of the same size. Both produce the same shards (checked: identical sha256 lists),
so the ratio compares only how they get there. Both read the dataset through
``pipeline.dataset.Dataset`` (schema-checked tables, the one tar reader). Run:

    .venv/bin/python benchmarks/build_shards.py --shards 8 --samples-per-raw-shard 2500
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

from harness.jobs import run_spark_job
from harness.paths import WORK, shown
from harness.table import text_table

from pipeline.build.shard_plan import shuffle_key
from pipeline.dataset import Dataset
from pipeline.logs import setup_logging
from pipeline.shards.tar_writer import TarWriter
from testkit.raw_shards import fabricate_dataset

log = logging.getLogger("benchmarks.build_shards")

TOP_FRACTION = 0.5
MIN_CAPTION_LENGTH = 5
MIN_IMAGE_SIZE = 64
SEED = 0  # build_shards' default --seed: the shuffle of both builders
RULES = (
    "--top-fraction", str(TOP_FRACTION),
    "--min-caption-length", str(MIN_CAPTION_LENGTH),
    "--min-image-size", str(MIN_IMAGE_SIZE),
    # The other caption rules (on by default) off: the single-process peer applies only the rules
    # above. With 20,000 fabricated captions of 0-12 words from 11, each one-word caption is on
    # about 140 images and the boilerplate rule would drop them.
    "--max-caption-repeats", "0",
    "--max-symbol-share", "1",
    "--max-repeated-chars", "0",
    "--no-drop-file-names",
    "--no-drop-urls",
)  # fmt: skip


@dataclass(frozen=True)
class Options:
    """The command line."""

    shards: int
    samples_per_raw_shard: int
    samples_per_shard: int
    master: str
    work: Path


def parse_options(argv: list[str] | None = None) -> Options:
    """Options from the command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shards", type=int, default=8, help="raw shards to fabricate")
    parser.add_argument("--samples-per-raw-shard", type=int, default=2500, help="rows per raw shard")
    parser.add_argument("--samples-per-shard", type=int, default=1000, help="final shard size")
    parser.add_argument("--master", default="local[2]", help="Spark master for build_shards")
    parser.add_argument("--work", type=Path, default=WORK / "build_shards", help="scratch folder")
    a = parser.parse_args(argv)
    if min(a.shards, a.samples_per_raw_shard, a.samples_per_shard) < 1:
        parser.error("--shards, --samples-per-raw-shard and --samples-per-shard must be >= 1")
    return Options(a.shards, a.samples_per_raw_shard, a.samples_per_shard, a.master, a.work.resolve())


def naive_build(source: Dataset, per_shard: int, seed: int, out: Dataset) -> list[str]:
    """Single-process reshard with the same rules and order into ``out``'s final shards.

    Returns the shards' sha256 list.
    """
    rows, scores, images = {}, {}, {}
    for shard in source.raw.complete_shards():
        for row in shard.successes(["uid", "caption", "original_width", "original_height"]):
            rows[row["uid"]] = {**row, "raw_shard": shard.index}
        table = source.scores.shard(shard.index).table(["uid", "clip_score"])
        scores.update(
            zip(table.column("uid").to_pylist(), table.column("clip_score").to_pylist(), strict=True)
        )
        for sample in shard.tar.samples():
            images[sample.key] = sample.members
    ranked = sorted(scores, key=lambda u: (-scores[u], u))
    top = set(ranked[: math.ceil(TOP_FRACTION * len(ranked))])
    kept = [
        u
        for u, r in rows.items()
        if len((r["caption"] or "").strip()) >= MIN_CAPTION_LENGTH
        and min(r["original_width"], r["original_height"]) >= MIN_IMAGE_SIZE
        and u in top
    ]
    kept.sort(key=lambda u: (shuffle_key(seed, u), u))
    hashes = []
    for index in range(0, len(kept), per_shard):
        buffer = io.BytesIO()
        writer = TarWriter(buffer)
        for uid in kept[index : index + per_shard]:
            meta = json.loads(images[uid]["json"])
            meta.pop("status", None)
            meta.update(uid=uid, clip_score=scores[uid], raw_shard=rows[uid]["raw_shard"])
            members = {
                "jpg": images[uid]["jpg"],
                "txt": images[uid]["txt"],
                "json": json.dumps(meta, ensure_ascii=False, sort_keys=True).encode("utf-8"),
            }
            writer.write(uid, members)
        writer.close()
        out.storage.write_bytes(buffer.getvalue(), *out.final.shard(index // per_shard).tar.parts)
        hashes.append(hashlib.sha256(buffer.getvalue()).hexdigest())
    return hashes


def main(argv: list[str] | None = None) -> None:
    """Fabricate (once), build with Spark twice (fresh, then a finished build), build naively; compare."""
    options = parse_options(argv)
    setup_logging()
    root = options.work / f"dataset_{options.shards}x{options.samples_per_raw_shard}"
    dataset = Dataset(str(root))
    if len(dataset.raw.complete_indices()) < options.shards:
        fabricate_dataset(root, options.shards, options.samples_per_raw_shard, seed=1, image_side=64)
    if dataset.final.exists():
        dataset.final.remove()
    naive = Dataset(str(options.work / "naive"))
    naive.storage.remove()

    args = [
        "--dataset", str(root),
        *RULES,
        "--samples-per-shard", str(options.samples_per_shard),
        "--min-shards", "1",
    ]  # fmt: skip
    os.environ.setdefault("CORPUSFORGE_LOG_LEVEL", "WARNING")
    spark = run_spark_job("build_shards", args, master=options.master)
    rerun = run_spark_job("build_shards", args, master=options.master)

    started = time.perf_counter()
    naive_hashes = naive_build(dataset, options.samples_per_shard, SEED, naive)
    naive_seconds = time.perf_counter() - started

    manifest = dataset.final.manifest()
    if manifest is None:
        raise RuntimeError(f"build_shards wrote no manifest in {dataset.final.display()}")
    same = [s["sha256"] for s in manifest["shards"]] == naive_hashes
    samples = options.shards * options.samples_per_raw_shard
    print(
        f"rows {samples}  kept {manifest['total_samples']}  shards {manifest['shard_count']}  "
        f"identical shards={same}  ({shown(root)})"
    )
    rows = [
        (f"build_shards ({options.master}, spark-submit incl. JVM start)", f"{spark.wall_s:.1f}"),
        ("build_shards rerun of a finished build", f"{rerun.wall_s:.1f}"),
        ("single-process script", f"{naive_seconds:.1f}"),
    ]
    print(text_table(("", "seconds"), rows))
    print(f"ratio build_shards / script: {spark.wall_s / naive_seconds:.2f}x")
    if not same:
        raise SystemExit("the two builders wrote different shards")


if __name__ == "__main__":
    main()
