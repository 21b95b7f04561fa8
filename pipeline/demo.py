"""``corpusforge demo``: the pipeline on the synthetic world, served from a local HTTP server.

Steps: draw the world, serve it with fault injection, download it (``jobs/download.py``), train
a small CLIP scorer on a separate clean seed set (no pretrained weights can be fetched offline),
score every pair (``jobs/score.py``) and report how well the scores flag mismatched captions.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path

from pipeline.score.quality import roc_auc, scores_with_labels
from pipeline.submit import run_job
from pipeline.synthetic.download import download_world
from pipeline.synthetic.scenes import random_scene, render
from pipeline.synthetic.world import WorldSpec, generate_world
from pipeline.train.contrastive import TrainOptions, save_checkpoint, train_clip

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoOptions:
    workdir: Path
    images: int = 1000
    faults_per_kind: int = 2
    seed: int = 0
    master: str = "local[2]"
    scorer_pairs: int = 2000
    scorer_steps: int = 250


def run_demo(options: DemoOptions) -> Path:
    """Run every stage that exists on the synthetic world; return the dataset path."""
    world = options.workdir / "world"
    if not (world / "world.json").exists():
        generate_world(world, WorldSpec(images=options.images, seed=options.seed))
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
    log.info("demo dataset written to %s", dataset)
    return dataset


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
