"""Does a probe on stored embeddings find the planted watermarks, and does build_shards drop them?

    .venv/bin/python benchmarks/probe_watermark.py [--images 400] [--fraction 0.3] [--style band]
        [--seed 21] [--hidden 64] [--folds 0] [--checkpoint PATH | --scorer random|trained]
        [--train-images 1000] [--train-steps 150] [--train-seed 101] [--caption-fraction 1.0]

1. a world of ``--images`` pictures (128-224 px, matched captions, no benchmark copies), a share
   ``--fraction`` of them watermarked in ``--style`` (``WorldSpec.watermark_style``), served on
   127.0.0.1 and downloaded (``watermarked`` kept);
2. scored with ``--save-embeddings`` by ``corpusforge-tiny``: ``--checkpoint``, or the random
   checkpoint of the tests (``--scorer random``, the default; same seed as tests/conftest.py
   ``random_checkpoint``), or (``--scorer trained``) one trained from scratch as the tests'
   ``trained_scorer`` is (``train_clip``, batch 96) on a separate training world of
   ``--train-images`` pictures (seed ``--train-seed``, the same fraction and style of watermarks,
   a share ``--caption-fraction`` of the watermarked pictures' captions saying so, as stock photos'
   alt texts do: ``WorldSpec.watermark_caption_fraction``), cached under
   benchmarks/_work/probe_watermark_scorer/;
3. the labelled half (every other sample in uid order) trains a linear and an MLP probe
   (``corpusforge probe train``'s library call, its own 20% validation split inside that half;
   with ``--folds K`` also both kinds with ``--folds K``: threshold and validation AUC from
   out-of-fold scores of the whole labelled half, the probe trained on all of it);
4. the score job applies both probes (``--probe``, reading the stored embeddings), and for each
   probe build_shards runs with ``--probe-max NAME=T`` at the probe's suggested threshold T;
5. prints per probe: its validation ROC AUC, the ROC AUC of its stored scores on the unlabelled
   half, and the share of watermarked and of clean samples of the unlabelled half that build_shards
   dropped for the probe (the labelled half is shown beside it).

Library calls on an in-process Spark (local[2], loopback only); the spark-submit paths are covered
by the tests. Scratch under benchmarks/_work/probe_watermark/ (overwritten on each run).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from harness.jobs import local_spark
from harness.paths import work_dir
from harness.table import text_table

from pipeline.build.job import BuildStage
from pipeline.dataset import Dataset
from pipeline.download.job import DownloadStage
from pipeline.errors import UserInputError
from pipeline.executor import SparkExecutor
from pipeline.probe.options import ProbeTrainOptions
from pipeline.probe.train import train_probe
from pipeline.score.job import ScoreStage
from pipeline.score.quality import roc_auc
from pipeline.synthetic.server import WorldServer
from pipeline.synthetic.world import WorldSpec, generate_world, write_url_lists

log = logging.getLogger("probe_watermark")


def random_checkpoint(path: Path) -> Path:
    """The tests' random corpusforge-tiny checkpoint (the same seed as tests/conftest.py)."""
    import open_clip
    import torch

    from pipeline.score.model import register_configs
    from pipeline.train.contrastive import save_checkpoint

    register_configs()
    torch.manual_seed(random.Random(7).randint(0, 1000))
    return save_checkpoint(open_clip.create_model("corpusforge-tiny"), path)


def watermarked_world(
    args: argparse.Namespace, images: int, seed: int, caption_fraction: float = 0.0
) -> WorldSpec:
    """The benchmark's world: matched captions, no benchmark copies, --fraction watermarked in --style."""
    return WorldSpec(
        images=images,
        seed=seed,
        watermark_fraction=args.fraction,
        watermark_style=args.style,
        watermark_caption_fraction=caption_fraction,
        mismatch_fraction=0.0,
        benchmark_images=0,
        planted_duplicates=0,
        min_side=128,
        max_side=224,
    )


def trained_checkpoint(args: argparse.Namespace) -> Path:
    """A corpusforge-tiny trained on a watermarked training world whose captions mention the
    watermark (see the module docstring); cached by its parameters."""
    from PIL import Image

    from pipeline.train.contrastive import TrainOptions, save_checkpoint, train_clip

    key = (
        f"{args.style}-f{args.fraction}-c{args.caption_fraction}-n{args.train_images}"
        f"-s{args.train_steps}-seed{args.train_seed}"
    )
    cached = work_dir("probe_watermark_scorer") / f"{key}.pt"
    if cached.exists():
        log.warning("trained scorer from the cache: %s", cached)
        return cached
    spec = watermarked_world(args, args.train_images, args.train_seed, args.caption_fraction)
    world = generate_world(work_dir("probe_watermark_scorer") / f"world-{key}", spec)
    rows = pq.read_table(world / "world.parquet", columns=["file", "caption"]).to_pylist()
    images = []
    for row in rows:
        with Image.open(world / row["file"]) as image:
            images.append(image.convert("RGB"))
    started = time.monotonic()
    model = train_clip(
        images, [r["caption"] for r in rows], TrainOptions(steps=args.train_steps, batch_size=96)
    )
    log.warning("trained the scorer in %.0f s", time.monotonic() - started)
    shutil.rmtree(world)
    return save_checkpoint(model, cached)


def selection(dataset: Path) -> dict[str, str]:
    """uid -> drop reason ('' when kept) of build_shards' selection."""
    final = Dataset(str(dataset)).final
    tables = [final.selection(i).read(["uid", "reason"]) for i in final.selection_indices()]
    return {r["uid"]: r["reason"] or "" for t in tables for r in t.to_pylist()}


def probe_scores(dataset: Path) -> dict[str, dict[str, float]]:
    """probe name -> uid -> score, from scores/probes/."""
    scores_folder = Dataset(str(dataset)).scores
    scores: dict[str, dict[str, float]] = {}
    for index in scores_folder.complete_indices():
        for r in scores_folder.shard(index).probes_file.read().to_pylist():
            scores.setdefault(r["probe"], {})[r["uid"]] = r["score"]
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--fraction", type=float, default=0.3)
    parser.add_argument("--style", default="band", choices=("tiled", "band"))
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument(
        "--folds", type=int, default=0, help="also probes whose threshold comes from K-fold CV (0: none)"
    )
    parser.add_argument("--checkpoint", type=Path, help="corpusforge-tiny checkpoint (default: see --scorer)")
    parser.add_argument("--scorer", default="random", choices=("random", "trained"))
    parser.add_argument("--train-images", type=int, default=1000)
    parser.add_argument("--train-steps", type=int, default=150)
    parser.add_argument("--train-seed", type=int, default=101)
    parser.add_argument("--caption-fraction", type=float, default=1.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    start = time.monotonic()
    root = work_dir("probe_watermark")
    shutil.rmtree(root)
    root.mkdir()
    if args.checkpoint:
        checkpoint = args.checkpoint
    elif args.scorer == "trained":
        checkpoint = trained_checkpoint(args)
    else:
        checkpoint = random_checkpoint(root / "random_tiny.pt")
    world = generate_world(root / "world", watermarked_world(args, args.images, args.seed))
    dataset = root / "dataset"
    spark = local_spark("probe-watermark-benchmark")
    executor = SparkExecutor(spark)
    try:
        with WorldServer(world) as server:
            lists = write_url_lists(world, server.base_url, out=root / "lists")
            download = DownloadStage()
            download.run(
                executor,
                download.parse(
                    [
                        "--urls",
                        str(lists["parquet"]),
                        "--dataset",
                        str(dataset),
                        "--allow-network",
                        "127.0.0.1/32",
                        "--samples-per-shard",
                        str(max(1, args.images // 2)),
                        "--keep-cols",
                        "watermarked",
                    ]
                ),
            )
        scorer = ScoreStage()
        model = ["--dataset", str(dataset), "--model", "corpusforge-tiny", "--pretrained", str(checkpoint)]
        scorer.run(executor, scorer.parse([*model, "--save-embeddings"]))
        labels = {}
        for raw in Dataset(str(dataset)).raw.complete_shards():
            for row in raw.successes(["uid", "extra"]):
                labels[row["uid"]] = bool(json.loads(row["extra"])["watermarked"])
        uids = sorted(labels)
        labelled = set(uids[::2])
        labels_file = root / "labels.csv"
        labels_file.write_text("uid,label\n" + "".join(f"{u},{int(labels[u])}\n" for u in sorted(labelled)))
        probes = {}
        arms = [(kind, folds) for kind in ("linear", "mlp") for folds in sorted({0, args.folds})]
        for kind, folds in arms:
            arm = kind if folds == 0 else f"{kind}_cv{folds}"
            options = ProbeTrainOptions(
                dataset=str(dataset),
                labels=str(labels_file),
                name=f"watermark_{arm}",
                kind=kind,
                hidden=args.hidden,
                folds=folds,
                output=str(root / f"watermark_{arm}.safetensors"),
            )
            probes[arm] = (train_probe(options), options.output)
        scorer.run(
            executor,
            scorer.parse(
                [*model, "--save-embeddings", *[a for _, f in probes.values() for a in ("--probe", f)]]
            ),
        )
        scores = probe_scores(dataset)
        rows = []
        for arm, (probe, _) in probes.items():
            name = probe.info.name
            threshold = probe.info.validation["suggested_threshold"]
            built_dir = root / f"built_{arm}"
            shutil.copytree(dataset, built_dir)
            build = BuildStage()
            try:
                build.run(
                    executor,
                    build.parse(
                        [
                            "--dataset",
                            str(built_dir),
                            "--probe-max",
                            f"{name}={threshold}",
                            "--min-shards",
                            "0",
                        ]
                    ),
                )
                reasons = selection(built_dir)
            except UserInputError as error:  # the threshold drops every sample: build_shards refuses
                log.warning("%s: %s", arm, error)
                reasons = dict.fromkeys(uids, "probe")
            row = [arm, probe.info.validation["roc_auc"], round(threshold, 3)]
            for part in (set(uids) - labelled, labelled):
                truth = np.array([labels[u] for u in sorted(part)])
                predicted = np.array([scores[name][u] for u in sorted(part)])
                dropped = np.array([reasons[u] == "probe" for u in sorted(part)])
                row += [
                    round(roc_auc(predicted, truth), 3),
                    f"{dropped[truth].mean():.0%}",
                    f"{dropped[~truth].mean():.0%}",
                ]
            rows.append(row)
    finally:
        spark.stop()
    positives = sum(labels.values())
    print(
        f"world: {len(labels)} images ({positives} watermarked, style {args.style}, seed {args.seed}), "
        f"checkpoint {args.scorer if args.checkpoint is None else args.checkpoint} ({checkpoint.name}); "
        f"{len(labelled)} labelled, {len(labels) - len(labelled)} unlabelled"
    )
    columns = [
        "probe",
        "val AUC",
        "threshold",
        "AUC unlab.",
        "wm dropped unlab.",
        "clean dropped unlab.",
        "AUC lab.",
        "wm dropped lab.",
        "clean dropped lab.",
    ]
    print(text_table(columns, rows))
    print(f"total {time.monotonic() - start:.0f} s")


if __name__ == "__main__":
    main()
