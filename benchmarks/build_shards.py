"""build_shards against the obvious single-process script, on the same fabricated dataset.

The peer is what one would write without Spark: read every raw tar and parquet in one Python
process, apply the same rules, shuffle the kept samples in memory with the same seeded keys and
write tars of the same size. Both produce the same shards (checked: identical sha256 lists),
so the ratio compares only how they get there. Run:

    .venv/bin/python benchmarks/build_shards.py --shards 8 --samples-per-raw-shard 2500
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import shutil
import sys
import tarfile
import time
from pathlib import Path

import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.build.shard_plan import shuffle_key  # noqa: E402
from pipeline.shards.tar_writer import TarWriter  # noqa: E402
from pipeline.synthetic.raw_shards import fabricate_dataset  # noqa: E402

RULES = ("--top-fraction", "0.5", "--min-caption-length", "5", "--min-image-size", "64")


def naive_build(root: Path, per_shard: int, seed: int, out: Path) -> list[str]:
    """Single-process reshard with the same rules and order; returns the shards' sha256 list."""
    rows, scores, images = {}, {}, {}
    for parquet in sorted((root / "raw").glob("[0-9]*.parquet")):
        shard = int(parquet.stem)
        for row in pq.read_table(parquet).to_pylist():
            if row["status"] == "success":
                rows[row["uid"]] = {**row, "raw_shard": shard}
        table = pq.read_table(root / "scores" / parquet.name)
        scores.update(
            zip(table.column("uid").to_pylist(), table.column("clip_score").to_pylist(), strict=True)
        )
        with tarfile.open(root / "raw" / f"{parquet.stem}.tar") as tar:
            for member in tar:
                key, ext = member.name.split(".", 1)
                images.setdefault(key, {})[ext] = tar.extractfile(member).read()
    ranked = sorted(scores, key=lambda u: (-scores[u], u))
    top = set(ranked[: math.ceil(0.5 * len(ranked))])
    kept = [
        u
        for u, r in rows.items()
        if len(r["caption"].strip()) >= 5
        and min(r["original_width"], r["original_height"]) >= 64
        and u in top
    ]
    kept.sort(key=lambda u: (shuffle_key(seed, u), u))
    out.mkdir(parents=True, exist_ok=True)
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
        (out / f"{index // per_shard:06d}.tar").write_bytes(buffer.getvalue())
        hashes.append(hashlib.sha256(buffer.getvalue()).hexdigest())
    return hashes


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shards", type=int, default=8, help="raw shards to fabricate")
    parser.add_argument("--samples-per-raw-shard", type=int, default=2500, help="rows per raw shard")
    parser.add_argument("--samples-per-shard", type=int, default=1000, help="final shard size")
    parser.add_argument("--master", default="local[2]", help="Spark master for build_shards")
    parser.add_argument("--work", default=str(REPO / "benchmarks" / "_work" / "build_shards"), help="scratch")
    a = parser.parse_args()
    work = Path(a.work)
    root = work / f"dataset_{a.shards}x{a.samples_per_raw_shard}"
    if not (root / "raw").exists():
        fabricate_dataset(root, a.shards, a.samples_per_raw_shard, seed=1, image_side=64)
    shutil.rmtree(root / "final", ignore_errors=True)
    shutil.rmtree(work / "naive", ignore_errors=True)

    from pipeline.submit import run_job

    args = [
        "--dataset",
        str(root),
        *RULES,
        "--samples-per-shard",
        str(a.samples_per_shard),
        "--min-shards",
        "1",
    ]
    os.environ.setdefault("CORPUSFORGE_LOG_LEVEL", "WARNING")
    started = time.perf_counter()
    run_job("build_shards", args, master=a.master)
    spark_seconds = time.perf_counter() - started
    resumed_started = time.perf_counter()
    run_job("build_shards", args, master=a.master)
    rerun_seconds = time.perf_counter() - resumed_started

    started = time.perf_counter()
    naive = naive_build(root, a.samples_per_shard, 0, work / "naive")
    naive_seconds = time.perf_counter() - started

    manifest = json.loads((root / "final" / "manifest.json").read_text())
    same = [s["sha256"] for s in manifest["shards"]] == naive
    samples = a.shards * a.samples_per_raw_shard
    kept, shards = manifest["total_samples"], manifest["shard_count"]
    print(f"rows {samples}  kept {kept}  shards {shards}  identical shards={same}")
    print(f"build_shards ({a.master}, spark-submit incl. JVM start): {spark_seconds:8.1f} s")
    print(f"build_shards rerun of a finished build:                 {rerun_seconds:8.1f} s")
    print(f"single-process script:                                  {naive_seconds:8.1f} s")
    print(f"ratio build_shards / script: {spark_seconds / naive_seconds:.2f}x")


if __name__ == "__main__":
    main()
