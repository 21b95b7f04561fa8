"""Proof that curation helps (the DataComp effect) on the synthetic world, same compute budget.

    .venv/bin/python benchmarks/curation.py [--images 3000] [--steps 300] [--seeds 0,1,2]

1. draws a corpus world whose captions are 30% mismatched (no planted benchmark copies), serves it
   on 127.0.0.1 and downloads it with ``spark-submit jobs/download.py``;
2. trains the CLIP scorer on a separate clean seed set (``pipeline.demo.train_scorer``) and scores
   every pair with ``spark-submit jobs/score.py``;
3. builds two sets of final shards with ``spark-submit jobs/build_shards.py`` (no dedup/, so nothing
   is dropped as a duplicate): (a) ``unfiltered``, no score rule, every downloaded pair kept;
   (b) ``filtered``, ``--top-fraction F`` by CLIP score;
4. pretrains corpusforge-tiny on each with ``corpusforge train``, once per seed, with the same
   steps x batch size (so (b), being smaller, sees each of its samples more often), and reads
   the zero-shot top-1 accuracy on a held-out, clean, labelled synthetic world (``--eval-world``);
5. prints per arm and seed the accuracy, the mean, the spread (max - min, std), chance
   (1 / classes of the eval world) and whether the target is met: mean(b) - mean(a) larger
   than the larger seed spread (max - min) of the two arms, and every seed of (b) at >= 5x chance.

The world, dataset, scorer, shards and training runs are cached under benchmarks/_work/curation/
(keyed by their parameters; ``--fresh`` starts over); results go to
benchmarks/_work/curation/results.json, training logs to .../runs/ARM/seed_S/train.log. The
held-out eval world (``pipeline.synthetic.world.held_out_spec``) is generated there once too.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from harness.jobs import run_spark_job
from harness.paths import REPO, WORK, shown
from harness.table import pct, text_table

from pipeline.dataset import Dataset
from pipeline.demo import DemoOptions, train_scorer
from pipeline.logs import setup_logging
from pipeline.score.model import load_model
from pipeline.score.quality import roc_auc, scores_with_labels
from pipeline.synthetic.download import download_world
from pipeline.synthetic.world import WorldSpec, generate_world, held_out_spec
from pipeline.train.contrastive import TrainOptions
from pipeline.train.evaluate import EvalSet, evaluate, world_eval_set

log = logging.getLogger("benchmarks.curation")
CURATION = WORK / "curation"
KEY_FILE = "_curation_key.json"  # this benchmark's cache marker, in each folder it caches
ZEROSHOT = "world/zeroshot_top1"
FAR_ABOVE_CHANCE = 5.0  # every seed of the filtered arm must reach this multiple of chance
REUSED: list[str] = []  # cached products this invocation reused (so its wall time is not a full run's)


@dataclass(frozen=True)
class Setup:
    """Everything that decides the numbers (recorded in results.json and in the cache keys)."""

    images: int
    mismatch_fraction: float
    world_seed: int
    image_size: int
    scorer_pairs: int
    scorer_steps: int
    top_fraction: float
    samples_per_shard: int
    steps: int
    batch_size: int
    lr: float
    warmup_steps: int
    workers: int
    threads: int
    seeds: tuple[int, ...]
    eval_images: int
    eval_seed: int
    evals: int
    master: str
    workdir: Path


def parse_args() -> Setup:
    """The command line as a frozen :class:`Setup`."""
    p = build_parser(__doc__)
    return setup_from(p, p.parse_args())


def build_parser(doc: str | None) -> argparse.ArgumentParser:
    """This benchmark's options (shared with benchmarks/semantic_curation.py)."""
    p = argparse.ArgumentParser(
        description=(doc or "").split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--images", type=int, default=3000, help="corpus images (pairs before filtering)")
    p.add_argument("--mismatch-fraction", type=float, default=0.3, help="captions of another scene")
    p.add_argument("--world-seed", type=int, default=0, help="seed of the corpus world")
    p.add_argument("--image-size", type=int, default=128, help="download --image-size (model input: 64 px)")
    p.add_argument("--scorer-pairs", type=int, default=2000, help="clean seed pairs of the CLIP scorer")
    p.add_argument("--scorer-steps", type=int, default=250, help="training steps of the CLIP scorer")
    p.add_argument(
        "--top-fraction", type=float, default=0.7, help="arm (b): best-scored fraction kept (DataComp)"
    )
    p.add_argument(
        "--samples-per-shard", type=int, default=0, help="final shard size (0: images / 16, at least 16)"
    )
    p.add_argument("--steps", type=int, default=300, help="optimiser steps of every training run")
    p.add_argument("--batch-size", type=int, default=128, help="contrastive batch of every training run")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    p.add_argument("--warmup-steps", type=int, default=30, help="linear warm-up steps")
    p.add_argument("--workers", type=int, default=2, help="data loader processes")
    p.add_argument("--threads", type=int, default=1, help="PyTorch threads (1: best on a busy machine)")
    p.add_argument("--seeds", default="0,1,2", help="training seeds, comma-separated")
    p.add_argument("--eval-images", type=int, default=1000, help="images of the held-out eval world")
    p.add_argument("--eval-seed", type=int, default=1234, help="seed of the held-out eval world")
    p.add_argument("--evals", type=int, default=4, help="evaluations per run (a learning curve)")
    p.add_argument("--master", default="local[2]", help="Spark master of the jobs")
    p.add_argument("--workdir", type=Path, default=CURATION, help="cache and results folder")
    p.add_argument("--fresh", action="store_true", help="delete the work folder first")
    return p


def setup_from(p: argparse.ArgumentParser, a: argparse.Namespace) -> Setup:
    """Check the parsed options of :func:`build_parser` and freeze them (``--fresh`` empties the workdir)."""
    if a.fresh and a.workdir.exists():
        shutil.rmtree(a.workdir)
    try:
        seeds = tuple(int(s) for s in a.seeds.split(",") if s.strip())
    except ValueError:
        p.error(f"--seeds: comma-separated integers expected, got {a.seeds!r}")
    if len(seeds) < 2:
        p.error("--seeds: at least two seeds are needed for a spread")
    if not 0 < a.top_fraction < 1:
        p.error(f"--top-fraction must be in (0, 1), got {a.top_fraction}")
    return Setup(
        images=a.images,
        mismatch_fraction=a.mismatch_fraction,
        world_seed=a.world_seed,
        image_size=a.image_size,
        scorer_pairs=a.scorer_pairs,
        scorer_steps=a.scorer_steps,
        top_fraction=a.top_fraction,
        samples_per_shard=a.samples_per_shard or max(16, a.images // 16),
        steps=a.steps,
        batch_size=a.batch_size,
        lr=a.lr,
        warmup_steps=a.warmup_steps,
        workers=a.workers,
        threads=a.threads,
        seeds=seeds,
        eval_images=a.eval_images,
        eval_seed=a.eval_seed,
        evals=a.evals,
        master=a.master,
        workdir=a.workdir,
    )


def cached(folder: Path, key: dict[str, Any]) -> bool:
    """True when ``folder`` holds a finished product of ``key``; otherwise empty it for a rebuild."""
    marker = folder / KEY_FILE
    if marker.exists() and json.loads(marker.read_text()) == key:
        REUSED.append(str(folder))
        return True
    if folder.exists():
        shutil.rmtree(folder)
    return False


def mark(folder: Path, key: dict[str, Any]) -> None:
    """Record that ``folder`` now holds the finished product of ``key`` (written last)."""
    (folder / KEY_FILE).write_text(json.dumps(key, indent=2))


def prepare_dataset(s: Setup, score_args: tuple[str, ...] = ()) -> tuple[Path, dict[str, Any]]:
    """World, download, scorer and scores (cached); returns the dataset and the scorer's quality.

    ``score_args`` go to ``jobs/score.py`` as well (e.g. ``--save-embeddings``) and into the key.
    """
    spec = WorldSpec(
        images=s.images,
        seed=s.world_seed,
        mismatch_fraction=s.mismatch_fraction,
        benchmark_images=0,  # no planted copies: without dedup they would only add repeats
        planted_duplicates=0,
    )
    world = s.workdir / "world"
    if not cached(world, asdict(spec)):
        generate_world(world, spec)
        mark(world, asdict(spec))
    import torch

    if s.threads:
        torch.set_num_threads(s.threads)  # the scorer trains in this process
    scorer = train_scorer(
        DemoOptions(workdir=s.workdir, scorer_pairs=s.scorer_pairs, scorer_steps=s.scorer_steps, seed=0)
    )
    dataset = s.workdir / "dataset"
    key = {"world": asdict(spec), "image_size": s.image_size, "scorer": scorer.name}
    if score_args:
        key["score_args"] = list(score_args)  # absent otherwise: earlier caches stay valid
    if not cached(dataset, key):
        per_raw_shard = max(100, s.images // 4)
        download_world(
            world,
            dataset,
            ["--samples-per-shard", str(per_raw_shard), "--image-size", str(s.image_size)],
            master=s.master,
        )
        score = [
            "--dataset", str(dataset),
            "--model", "corpusforge-tiny",
            "--pretrained", str(scorer),
            *score_args,
        ]  # fmt: skip
        run_spark_job("score", score, master=s.master)
        mark(dataset, key)
    scores, matched = scores_with_labels(str(dataset))
    quality = {
        "pairs": int(len(scores)),
        "mismatched": int((~matched).sum()),
        "roc_auc": round(roc_auc(scores, matched), 4),
        "top_fractions": top_fraction_table(scores, matched),
        "checkpoint": str(scorer),
    }
    log.info("scorer: ROC AUC %(roc_auc).4f on %(pairs)d pairs (%(mismatched)d mismatched)", quality)
    return dataset, quality


def top_fraction_table(scores: np.ndarray, matched: np.ndarray) -> list[dict[str, float]]:
    """For a few --top-fraction values: share of mismatched pairs among those kept, matched kept."""
    order = np.argsort(-scores, kind="stable")
    rows = []
    for fraction in (0.5, 0.6, 0.7, 0.8, 0.9, 1.0):
        kept = matched[order[: math.ceil(fraction * len(scores))]]
        rows.append(
            {
                "top_fraction": fraction,
                "mismatched_kept": float((~kept).mean()),
                "matched_kept": float(kept.sum() / matched.sum()),
            }
        )
    return rows


def build_arm(
    s: Setup, dataset: Path, name: str, score_args: list[str], dedup_args: list[str] | None = None
) -> dict[str, Any]:
    """Build final shards with ``score_args`` and move them to WORKDIR/arms/NAME/final (cached).

    With ``dedup_args``, ``jobs/dedup.py --dataset DATASET DEDUP_ARGS`` runs first (so build_shards
    drops what it finds) and its dedup/matches.parquet is kept as WORKDIR/arms/NAME/matches.parquet.
    """
    folder = s.workdir / "arms" / name
    args = [
        "--dataset", str(dataset),
        *score_args,
        "--samples-per-shard", str(s.samples_per_shard),
        "--min-shards", str(max(1, s.workers)),
        "--overwrite",
    ]  # fmt: skip
    key: dict[str, Any] = {"dataset": json.loads((dataset / KEY_FILE).read_text()), "args": args[2:]}
    if dedup_args is not None:
        key["dedup_args"] = dedup_args
    source, arm = Dataset(str(dataset)), Dataset(str(folder))  # the arm holds only final/
    if not cached(folder, key):
        if dedup_args is not None:
            run_spark_job("dedup", ["--dataset", str(dataset), *dedup_args], master=s.master)
        run_spark_job("build_shards", args, master=s.master)
        arm.storage.makedirs()
        source.storage.rename(source.final.path, arm.final.path)
        if dedup_args is not None:
            shutil.copyfile(dataset / "dedup" / "matches.parquet", folder / "matches.parquet")
        mark(folder, key)
    sizes = arm.storage.read_json(*arm.final.sizes_file)
    return {
        "name": name,
        "build_args": score_args,
        "shards": len(sizes),
        "pattern": arm.final.pattern(len(sizes)),
        "samples": sum(sizes.values()),
        "mismatched_kept": mismatch_rate(source, arm),
    }


def mismatch_rate(dataset: Dataset, arm: Dataset) -> float:
    """Fraction of the arm's kept samples whose caption is mismatched (world labels kept in raw/)."""
    matched: dict[str, bool] = {}
    for shard in dataset.raw.complete_shards():
        for row in shard.successes(["uid", "extra"]):
            matched[row["uid"]] = bool(json.loads(row["extra"])["matched"])
    kept = [
        row["uid"]
        for index in arm.final.selection_indices()
        for row in arm.final.selection(index).read(["uid", "reason"]).to_pylist()
        if row["reason"] is None
    ]
    return sum(not matched[uid] for uid in kept) / len(kept)


def eval_world(s: Setup) -> Path:
    """The held-out eval world's folder (see :func:`prepare_eval_world`)."""
    return s.workdir / f"eval_world_{s.eval_images}_{s.eval_seed}"


def prepare_eval_world(s: Setup) -> EvalSet:
    """Generate the held-out, clean, labelled eval world once (cached); return it as an eval set."""
    folder, spec = eval_world(s), held_out_spec(s.eval_images, s.eval_seed)
    if not cached(folder, asdict(spec)):
        generate_world(folder, spec)
        mark(folder, asdict(spec))
    return world_eval_set(folder)


def train_run(s: Setup, arm: dict[str, Any], seed: int) -> dict[str, Any]:
    """One ``corpusforge train`` run (cached); returns its final accuracy and learning curve."""
    out = s.workdir / "runs" / arm["name"] / f"seed_{seed}"
    argv = [
        "--shards", arm["pattern"],
        "--model", "corpusforge-tiny",
        "--steps", str(s.steps),
        "--batch-size", str(s.batch_size),
        "--lr", str(s.lr),
        "--warmup-steps", str(s.warmup_steps),
        "--workers", str(s.workers),
        "--threads", str(s.threads),
        "--seed", str(seed),
        "--eval-world", str(eval_world(s)),
        "--eval-every", str(max(1, s.steps // s.evals)),
        "--save-every", "0",
        "--no-tensorboard",
        "--output", str(out),
    ]  # fmt: skip
    arm_key = json.loads((s.workdir / "arms" / arm["name"] / KEY_FILE).read_text())
    key = {"arm": arm_key, "argv": argv}
    if not cached(out, key):
        out.mkdir(parents=True)
        log.info("training %s, seed %d: %d steps x %d", arm["name"], seed, s.steps, s.batch_size)
        started = time.monotonic()
        with open(out / "train.log", "w") as handle:
            code = subprocess.run(
                [sys.executable, "-m", "pipeline.cli", "train", *argv],
                cwd=REPO,
                stdout=handle,
                stderr=subprocess.STDOUT,
                check=False,
            ).returncode
        if code != 0:
            tail = (out / "train.log").read_text().splitlines()[-20:]
            raise RuntimeError(f"training {arm['name']} seed {seed} failed ({code}):\n" + "\n".join(tail))
        (out / "wall_s.txt").write_text(f"{time.monotonic() - started:.1f}\n")
        mark(out, key)
    summary = json.loads((out / "summary.json").read_text())
    curve = [
        (row["step"], row[ZEROSHOT])
        for row in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
        if ZEROSHOT in row
    ]
    return {
        "seed": seed,
        "zeroshot_top1": summary["eval"][ZEROSHOT],
        "zeroshot_top5": summary["eval"].get("world/zeroshot_top5"),
        "final_loss": summary["final_loss"],
        "samples_per_s": summary["samples_per_s"],
        "wall_s": float((out / "wall_s.txt").read_text()),
        "curve": curve,
    }


def scorer_zeroshot(checkpoint: Path, eval_set: EvalSet) -> float:
    """Zero-shot top-1 of the scorer itself on the eval world (a reference, outside both budgets)."""
    loaded = load_model("corpusforge-tiny", str(checkpoint), "cpu")
    return evaluate(loaded.model, loaded.preprocess, loaded.tokenizer, [eval_set], "cpu")[ZEROSHOT]


def spread(values: list[float]) -> dict[str, float]:
    """Mean, max - min and sample standard deviation of one arm's accuracies."""
    return {
        "mean": statistics.fmean(values),
        "range": max(values) - min(values),
        "std": statistics.stdev(values),
        "min": min(values),
        "max": max(values),
    }


def main() -> None:
    """Prepare (or reuse) every product, train both arms on every seed, print and save the results."""
    s = parse_args()
    setup_logging()
    s.workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    dataset, scorer = prepare_dataset(s)
    arms = [
        build_arm(s, dataset, "unfiltered", []),
        build_arm(s, dataset, "filtered", ["--top-fraction", str(s.top_fraction)]),
    ]
    eval_set = prepare_eval_world(s)
    classes = len(eval_set.classnames)
    chance = 1 / classes
    scorer["zeroshot_top1"] = scorer_zeroshot(Path(scorer["checkpoint"]), eval_set)
    for arm in arms:
        arm["epochs"] = s.steps * s.batch_size / arm["samples"]  # same budget: the smaller arm repeats more
        arm["runs"] = [train_run(s, arm, seed) for seed in s.seeds]
        arm["stats"] = spread([r["zeroshot_top1"] for r in arm["runs"]])
    a, b = (arm["stats"] for arm in arms)
    gap = b["mean"] - a["mean"]
    seed_spread = max(a["range"], b["range"])
    target = {
        "gap": gap,
        "seed_spread": seed_spread,
        "beats_by_more_than_spread": gap > seed_spread,
        "filtered_min_over_chance": b["min"] / chance,
        "far_above_chance": b["min"] >= FAR_ABOVE_CHANCE * chance,
    }
    target["met"] = target["beats_by_more_than_spread"] and target["far_above_chance"]
    results = {
        "setup": {**asdict(s), "workdir": str(s.workdir)},
        "scorer": scorer,
        "eval_classes": classes,
        "chance": chance,
        "arms": arms,
        "target": target,
        "wall_s": time.monotonic() - started,
        "reused_from_cache": REUSED,
    }
    (s.workdir / "results.json").write_text(json.dumps(results, indent=2))
    print_table(s, results)


def print_table(s: Setup, r: dict[str, Any]) -> None:
    """The human summary: one row per arm, seeds as columns."""
    print(
        f"\nzero-shot top-1 on {s.eval_images} held-out images, {r['eval_classes']} classes "
        f"(chance {100 * r['chance']:.1f}%); {s.steps} steps x {s.batch_size} per run; "
        f"scorer ROC AUC {r['scorer']['roc_auc']:.3f}"
    )
    print(
        f"(the scorer itself, {s.scorer_steps} steps x {TrainOptions().batch_size} on {s.scorer_pairs} "
        f"clean pairs outside both budgets: {100 * r['scorer']['zeroshot_top1']:.1f}%)"
    )
    rows = []
    for arm in r["arms"]:
        st = arm["stats"]
        rows.append(
            (
                arm["name"] + (f" (top {s.top_fraction:g})" if arm["build_args"] else " (all)"),
                arm["samples"],
                pct(arm["mismatched_kept"], 1),
                f"{arm['epochs']:.1f}",
                *(pct(run["zeroshot_top1"], 1) for run in arm["runs"]),
                pct(st["mean"], 1),
                pct(st["range"], 1),
                pct(st["std"], 1),
            )
        )
    columns = ("arm", "samples", "mism.", "epochs", *(f"seed {x}" for x in s.seeds), "mean", "max-min", "std")
    print(text_table(columns, rows))
    print("top fraction F by this scorer: mismatched among the kept, matched pairs kept")
    print(
        text_table(
            ("F", "mismatched kept", "matched kept"),
            [
                (f"{row['top_fraction']:g}", pct(row["mismatched_kept"], 1), pct(row["matched_kept"], 1))
                for row in r["scorer"]["top_fractions"]
            ],
            indent=2,
        )
    )
    t = r["target"]
    print(
        f"filtered - unfiltered: {100 * t['gap']:+.1f} points vs seed spread {100 * t['seed_spread']:.1f} "
        f"({'beats' if t['beats_by_more_than_spread'] else 'does NOT beat'} it); filtered worst seed "
        f"{t['filtered_min_over_chance']:.1f}x chance (target >= {FAR_ABOVE_CHANCE:g}x); "
        f"target {'MET' if t['met'] else 'NOT met'}"
    )
    reused = f", {len(r['reused_from_cache'])} cached products reused" if r["reused_from_cache"] else ""
    print(f"{r['wall_s'] / 60:.1f} min{reused}; results in {shown(s.workdir / 'results.json')}")


if __name__ == "__main__":
    main()
