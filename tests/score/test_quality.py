"""A CLIP trained on clean synthetic pairs separates matched from mismatched captions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.score.quality import roc_auc, scores_with_labels


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
def test_trained_scorer_separates_mismatched_captions(scored_with_embeddings: Path) -> None:
    """The session's trained scorer (tests/conftest.py) on the session world."""
    scores, matched = scores_with_labels(str(scored_with_embeddings))
    assert len(scores) > 60 and 5 < (~matched).sum() < 40  # the world has 20% mismatched captions
    assert roc_auc(scores, matched) >= 0.9
