"""``corpusforge demo``: the whole pipeline on the synthetic world, served from a local HTTP server.

Steps: draw the world, serve it with fault injection, download it (``jobs/download.py``), train
a small CLIP scorer on a separate clean seed set (no pretrained weights can be fetched offline),
score every pair (``jobs/score.py``), remove the planted copies of the world's benchmark images
and duplicates (``jobs/dedup.py``), build the final shards keeping the best-scored pairs
(``jobs/build_shards.py``), index the embeddings for the explorer (``jobs/index.py``), pretrain
a tiny CLIP on them with zero-shot evaluation on held-out labelled pictures (``corpusforge
train``) and write the report (``corpusforge report``).
"""

from __future__ import annotations

import logging
import random
import shutil
from pathlib import Path

from pipeline.dataset import Dataset
from pipeline.demo_options import DemoOptions
from pipeline.report.command import write_report
from pipeline.report.options import ReportOptions
from pipeline.score.quality import roc_auc, scores_with_labels
from pipeline.submit import run_job
from pipeline.synthetic.download import download_world
from pipeline.synthetic.scenes import random_scene, render
from pipeline.synthetic.world import WorldSpec, generate_world, held_out_spec
from pipeline.train.contrastive import TrainOptions, save_checkpoint, train_clip
from pipeline.train.loop import train
from pipeline.train.options import options_from_args as train_options_from_args

log = logging.getLogger(__name__)


def run_demo(options: DemoOptions) -> Path:
    """Run every stage on the synthetic world; return the path of the report page."""
    world = options.workdir / "world"
    if not (world / "world.json").exists():
        spec = WorldSpec(
            images=options.images, seed=options.seed, junk_caption_fraction=options.junk_captions
        )
        generate_world(world, spec)
    dataset = options.workdir / "dataset"
    download_world(
        world,
        dataset,
        ["--samples-per-shard", "250", "--timeout", "3", "--overwrite"],
        faults_per_kind=options.faults_per_kind,
        bad_rows=True,
        seed=options.seed,
        master=options.master,
    )
    scorer = train_scorer(options)
    run_job(
        "score",
        [
            "--dataset",
            str(dataset),
            "--model",
            "corpusforge-tiny",
            "--pretrained",
            str(scorer),
            "--save-embeddings",
            "--overwrite",
        ],
        master=options.master,
    )
    scores, matched = scores_with_labels(str(dataset))
    if matched.any() and (~matched).any():
        log.info(
            "clip_score separates the %d deliberately mismatched captions from the %d matched ones "
            "with ROC AUC %.3f",
            (~matched).sum(),
            matched.sum(),
            roc_auc(scores, matched),
        )
    # The defaults (10 and 6 bits, every candidate verified by the thumbnails) and the score
    # job's embeddings: on the demo world every downloaded planted copy is found and nothing else
    # (docs/dedup.md); the audit grid also shows the candidates the verifier rejected.
    dedup = ["--dataset", str(dataset), "--benchmark", str(world / "benchmark"), "--embeddings"]
    run_job("dedup", dedup, master=options.master)
    run_job(
        "build_shards",
        [
            "--dataset",
            str(dataset),
            "--top-fraction",
            str(options.top_fraction),
            "--samples-per-shard",
            str(max(10, options.images // 12)),  # several shards, as a trainer with workers needs
            "--min-shards",
            "4",
            "--overwrite",
        ],
        master=options.master,
    )
    # The kNN index of the image and caption embeddings: `corpusforge explore` searches it.
    run_job("index", ["--dataset", str(dataset), "--text", "--overwrite"], master=options.master)
    train_dir = pretrain(options, dataset)
    report = write_report(ReportOptions(dataset=str(dataset), train_dir=str(train_dir)))
    log.info("demo dataset written to %s", dataset)
    return Path(report.index)


def pretrain(options: DemoOptions, dataset: Path) -> Path:
    """Pretrain corpusforge-tiny on the final shards, with zero-shot eval on a held-out world."""
    final = Dataset(str(dataset)).final
    shards = len(final.storage.read_json(*final.sizes_file))
    output = options.workdir / "train"
    eval_world = options.workdir / "eval_world"
    if not (eval_world / "world.parquet").exists():
        generate_world(eval_world, held_out_spec())
    trainer_options = train_options_from_args(
        [
            "--shards",
            final.pattern(shards),
            "--model",
            "corpusforge-tiny",
            "--steps",
            str(options.train_steps),
            "--batch-size",
            "64",
            "--output",
            str(output),
            "--eval-world",
            str(eval_world),
            "--eval-every",
            str(max(1, options.train_steps // 3)),
            "--seed",
            str(options.seed),
        ]
    )
    if output.exists():
        shutil.rmtree(output)
    summary = train(trainer_options)
    evaluation = summary.get("eval", {})
    log.info(
        "pretraining finished after %d steps: zero-shot top-1 %.3f, top-5 %.3f on held-out labelled pictures",
        summary["steps"],
        evaluation.get("world/zeroshot_top1", float("nan")),
        evaluation.get("world/zeroshot_top5", float("nan")),
    )
    return output


def train_scorer(options: DemoOptions) -> Path:
    """Train (or reuse) the demo's CLIP scorer on clean pairs drawn apart from the corpus."""
    path = options.workdir / "scorer" / f"corpusforge-tiny-{options.scorer_pairs}-{options.scorer_steps}.pt"
    if path.exists():
        log.info("reusing the scorer trained earlier: %s", path)
        return path
    rng = random.Random(10_000 + options.seed)
    scenes = [random_scene(rng) for _ in range(options.scorer_pairs)]
    images = [render(s, (rng.randint(200, 480), rng.randint(200, 480)), rng) for s in scenes]
    model = train_clip(images, [s.caption for s in scenes], TrainOptions(steps=options.scorer_steps))
    return save_checkpoint(model, path)
