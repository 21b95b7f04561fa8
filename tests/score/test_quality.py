"""A CLIP trained on clean synthetic pairs separates matched from mismatched captions."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.score.quality import roc_auc, scores_with_labels
from pipeline.synthetic.scenes import random_scene, render
from pipeline.train.contrastive import TrainOptions, save_checkpoint, train_clip
from tests.stages import score as run
from tests.stages import score_options as options_from_args


def test_roc_auc_matches_its_definition() -> None:
    rng = np.random.default_rng(1)
    scores = np.round(rng.normal(size=300), 1)  # with ties
    labels = rng.random(300) < 0.3
    pos, neg = scores[labels], scores[~labels]
    brute = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (
        len(pos) * len(neg)
    )
    assert roc_auc(scores, labels) == pytest.approx(brute)
    assert roc_auc([0.1, 0.9], [False, True]) == 1.0
    with pytest.raises(ValueError):
        roc_auc([0.1], [True])


@pytest.mark.slow
def test_trained_scorer_separates_mismatched_captions(spark, downloaded: Path, tmp_path: Path) -> None:
    rng = random.Random(11)  # a seed set separate from the session world's
    scenes = [random_scene(rng) for _ in range(1200)]
    images = [render(s, (rng.randint(200, 400), rng.randint(200, 400)), rng) for s in scenes]
    model = train_clip(images, [s.caption for s in scenes], TrainOptions(steps=150, batch_size=96))
    checkpoint = save_checkpoint(model, tmp_path / "scorer.pt")
    dataset = tmp_path / "dataset"
    shutil.copytree(downloaded, dataset)
    run(
        spark,
        options_from_args(
            ["--dataset", str(dataset), "--model", "corpusforge-tiny", "--pretrained", str(checkpoint)]
        ),
    )
    scores, matched = scores_with_labels(str(dataset))
    assert len(scores) > 60 and 5 < (~matched).sum() < 40  # the world has 20% mismatched captions
    assert roc_auc(scores, matched) >= 0.9
