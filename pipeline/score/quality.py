"""Measuring how well CLIP scores separate matched from mismatched pairs (ROC AUC)."""

from __future__ import annotations

import json

import numpy as np

from pipeline.dataset import Dataset


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a random positive outscores a random negative (ties count half)."""
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("ROC AUC needs both positive and negative pairs")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    # Average ranks over ties (1-based), then the Mann-Whitney U statistic.
    _, starts, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    for start, count in zip(starts, counts, strict=True):
        ranks[order[start : start + count]] = start + (count + 1) / 2
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def scores_with_labels(dataset_url: str, label_key: str = "matched") -> tuple[np.ndarray, np.ndarray]:
    """CLIP scores of a dataset joined with a boolean kept column (``--keep-cols matched``)."""
    dataset = Dataset(dataset_url)
    labels: dict[str, bool] = {}
    for raw in dataset.raw.complete_shards():
        for row in raw.successes(["uid", "extra"]):
            if row["extra"]:
                labels[row["uid"]] = bool(json.loads(row["extra"])[label_key])
    scores, flags = [], []
    for shard in dataset.scores.complete_indices():
        for row in dataset.scores.shard(shard).table(["uid", "clip_score"]).to_pylist():
            if row["uid"] in labels:
                scores.append(row["clip_score"])
                flags.append(labels[row["uid"]])
    return np.asarray(scores), np.asarray(flags, dtype=bool)
