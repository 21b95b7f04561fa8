"""Quality check of CLIP filtering on the synthetic world (issue: score job).

1. Train corpusforge-tiny with the bundled contrastive trainer on clean synthetic pairs (a seed
   set separate from the corpus).
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
import random
import shutil
from pathlib import Path

import numpy as np

from pipeline.logs import setup_logging
from pipeline.score.quality import roc_auc, scores_with_labels
from pipeline.submit import run_job
from pipeline.synthetic.download import download_world
from pipeline.synthetic.scenes import random_scene, render
from pipeline.synthetic.world import WorldSpec, generate_world
from pipeline.train.contrastive import TrainOptions, save_checkpoint, train_clip

log = logging.getLogger("benchmarks.score_quality")
WORK = Path(__file__).parent / "_work" / "score_quality"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=1000, help="corpus images (20%% mismatched captions)")
    parser.add_argument("--train-images", type=int, default=3000, help="clean pairs to train the scorer")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    setup_logging()
    if WORK.exists():
        shutil.rmtree(WORK)
    WORK.mkdir(parents=True)

    rng = random.Random(1000 + args.seed)
    scenes = [random_scene(rng) for _ in range(args.train_images)]
    images = [render(s, (rng.randint(200, 480), rng.randint(200, 480)), rng) for s in scenes]
    model = train_clip(images, [s.caption for s in scenes], TrainOptions(steps=args.steps, seed=args.seed))
    checkpoint = save_checkpoint(model, WORK / "scorer.pt")

    world = generate_world(
        WORK / "world", WorldSpec(images=args.images, seed=args.seed, mismatch_fraction=0.2)
    )
    dataset = WORK / "dataset"
    download_world(world, dataset, ["--samples-per-shard", "250"])
    run_job(
        "score", ["--dataset", str(dataset), "--model", "corpusforge-tiny", "--pretrained", str(checkpoint)]
    )
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
        "images": int(len(scores)),
        "mismatched": int((~matched).sum()),
        "roc_auc": round(auc, 4),
        "train_images": args.train_images,
        "steps": args.steps,
        "kept_at_threshold": kept,
    }
    (WORK.parent / "score_quality_results.json").write_text(json.dumps(result, indent=2))
    print(
        f"ROC AUC of clip_score, matched vs mismatched: {auc:.4f} (target >= 0.95) "
        f"on {len(scores)} pairs, {(~matched).sum()} mismatched"
    )
    for threshold, fractions in kept.items():
        print(
            f"  threshold {threshold}: keeps {100 * fractions['matched']:.1f}% of matched, "
            f"{100 * fractions['mismatched']:.1f}% of mismatched pairs"
        )


if __name__ == "__main__":
    main()
