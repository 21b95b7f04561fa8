"""Quality check of CLIP filtering on the synthetic world (issue: score job).

1. Train corpusforge-tiny with the bundled contrastive trainer on clean synthetic pairs (a seed
   set separate from the corpus: ``pipeline.demo.train_scorer``).
2. Generate a corpus world with 20% mismatched captions, serve it on 127.0.0.1, download it with
   ``spark-submit jobs/download.py`` and score it with ``spark-submit jobs/score.py``.
3. Report the ROC AUC of clip_score separating matched from mismatched pairs (target >= 0.95)
   and the fraction of each kept at a few thresholds.

    .venv/bin/python benchmarks/score_quality.py [--images 1000] [--train-images 3000] [--steps 300]
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from dataclasses import asdict, dataclass

import numpy as np
from harness.jobs import run_spark_job
from harness.paths import WORK, shown

from pipeline.demo import DemoOptions, train_scorer
from pipeline.logs import setup_logging
from pipeline.score.quality import roc_auc, scores_with_labels
from pipeline.synthetic.download import download_world
from pipeline.synthetic.world import WorldSpec, generate_world

log = logging.getLogger("benchmarks.score_quality")
FOLDER = WORK / "score_quality"
RESULTS = WORK / "score_quality_results.json"
TARGET_AUC = 0.95
MISMATCH_FRACTION = 0.2


@dataclass(frozen=True)
class Options:
    """The command line."""

    images: int
    train_images: int
    steps: int
    seed: int


def parse_options(argv: list[str] | None = None) -> Options:
    """Options from the command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=1000, help="corpus images (20%% mismatched captions)")
    parser.add_argument("--train-images", type=int, default=3000, help="clean pairs to train the scorer")
    parser.add_argument("--steps", type=int, default=300, help="training steps of the scorer")
    parser.add_argument("--seed", type=int, default=0, help="seed of the corpus world and the scorer's pairs")
    a = parser.parse_args(argv)
    return Options(images=a.images, train_images=a.train_images, steps=a.steps, seed=a.seed)


def main(argv: list[str] | None = None) -> None:
    """Train the scorer, download and score the world, print the AUC and what thresholds keep."""
    options = parse_options(argv)
    setup_logging()
    if FOLDER.exists():
        shutil.rmtree(FOLDER)
    FOLDER.mkdir(parents=True)

    checkpoint = train_scorer(
        DemoOptions(
            workdir=FOLDER, scorer_pairs=options.train_images, scorer_steps=options.steps, seed=options.seed
        )
    )
    world = generate_world(
        FOLDER / "world",
        WorldSpec(images=options.images, seed=options.seed, mismatch_fraction=MISMATCH_FRACTION),
    )
    dataset = FOLDER / "dataset"
    download_world(world, dataset, ["--samples-per-shard", "250"])
    score_args = ["--dataset", str(dataset), "--model", "corpusforge-tiny", "--pretrained", str(checkpoint)]
    run_spark_job("score", score_args)
    scores, matched = scores_with_labels(str(dataset))
    auc = roc_auc(scores, matched)
    kept = {
        f"{t:.2f}": {
            "matched": float((scores[matched] >= t).mean()),
            "mismatched": float((scores[~matched] >= t).mean()),
        }
        for t in np.quantile(scores, [0.1, 0.2, 0.3])
    }
    result = {
        "options": asdict(options),
        "images": int(len(scores)),
        "mismatched": int((~matched).sum()),
        "roc_auc": round(auc, 4),
        "kept_at_threshold": kept,
    }
    RESULTS.write_text(json.dumps(result, indent=2))
    print(
        f"ROC AUC of clip_score, matched vs mismatched: {auc:.4f} (target >= {TARGET_AUC}) "
        f"on {len(scores)} pairs, {(~matched).sum()} mismatched; results in {shown(RESULTS)}"
    )
    for threshold, fractions in kept.items():
        print(
            f"  threshold {threshold}: keeps {100 * fractions['matched']:.1f}% of matched, "
            f"{100 * fractions['mismatched']:.1f}% of mismatched pairs"
        )


if __name__ == "__main__":
    main()
