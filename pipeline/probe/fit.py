"""Fitting a probe (torch, CPU, full batch) and measuring it on a held-out split.

- Split: seeded, stratified for a binary target (each class keeps its share in the validation
  split), so both classes are always measured.
- Features: standardised with the training split's mean and deviation (folded into the first
  layer's weights afterwards, so the file holds a plain linear/MLP head).
- Training: full-batch AdamW on the training split (weight decay as L2 regularisation); a binary
  probe minimises the logistic loss with the positives weighted by negatives/positives (balanced
  classes), a regression probe the squared error of the standardised target.
- Validation: on the held-out split, or (``folds`` K >= 2) on out-of-fold scores of every label
  (K seeded, stratified folds, each scored by a probe trained on the other K-1; the probe kept is
  then trained on all labels): fewer labels lost to validation and a less noisy threshold.
  Binary: ROC AUC, accuracy at 0.5, and a suggested threshold (the one maximising
  Youden's J = TPR - FPR on the validation split) with its precision, recall and accuracy;
  regression: RMSE, MAE and Pearson correlation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.errors import UserInputError
from pipeline.probe.model import Probe, ProbeInfo
from pipeline.score.quality import roc_auc

MIN_LABELS = 10  # fewer and the held-out split measures nothing
MIN_PER_CLASS = 2  # a binary probe needs at least this many of each class in each split


@dataclass(frozen=True)
class FitSettings:
    """How to fit: the probe's shape and the optimisation (see ``ProbeTrainOptions``)."""

    kind: str = "linear"
    target: str = "binary"
    hidden: int = 256
    epochs: int = 300
    learning_rate: float = 0.01
    weight_decay: float = 1e-4
    validation_fraction: float = 0.2
    folds: int = 0
    seed: int = 0


def split(labels: np.ndarray, settings: FitSettings, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation row indices (seeded; stratified by class for a binary target)."""
    n = len(labels)
    if n < MIN_LABELS:
        raise UserInputError(f"{where}: {n} labelled samples; a probe needs at least {MIN_LABELS}")
    rng = np.random.default_rng(settings.seed)
    if settings.target == "regression":
        order = rng.permutation(n)
        cut = max(1, round(n * settings.validation_fraction))
        return np.sort(order[cut:]), np.sort(order[:cut])
    counts = {c: int((labels == c).sum()) for c in (0.0, 1.0)}
    if min(counts.values()) == 0:
        only = next(c for c, k in counts.items() if k)
        raise UserInputError(
            f"{where}: every labelled sample has label {only:g}: a classifier needs both classes (0 and 1)"
        )
    train, valid = [], []
    for value, count in counts.items():
        rows = rng.permutation(np.flatnonzero(labels == value))
        cut = max(1, round(count * settings.validation_fraction))
        if count - cut < 1 or count < MIN_PER_CLASS:
            raise UserInputError(
                f"{where}: only {count} samples of class {value:g}; need at least {MIN_PER_CLASS} "
                "(one to train on, one to validate)"
            )
        valid.append(rows[:cut])
        train.append(rows[cut:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(valid))


def fold_indices(labels: np.ndarray, settings: FitSettings, where: str) -> list[np.ndarray]:
    """``settings.folds`` seeded folds of the row indices (stratified by class for a binary target:
    each fold keeps each class's share)."""
    n, k = len(labels), settings.folds
    if n < MIN_LABELS:
        raise UserInputError(f"{where}: {n} labelled samples; a probe needs at least {MIN_LABELS}")
    if n < 2 * k:
        raise UserInputError(f"{where}: {n} labelled samples for --folds {k}; need at least {2 * k}")
    rng = np.random.default_rng(settings.seed)
    if settings.target == "regression":
        groups = [np.arange(n)]
    else:
        groups = [np.flatnonzero(labels == c) for c in (0.0, 1.0)]
        for value, rows in zip((0.0, 1.0), groups, strict=True):
            if len(rows) < max(MIN_PER_CLASS, k):
                raise UserInputError(
                    f"{where}: only {len(rows)} samples of class {value:g}; --folds {k} needs at "
                    f"least {max(MIN_PER_CLASS, k)} (one in each fold)"
                )
    fold_of = np.empty(n, dtype=np.int64)
    start = 0
    for rows in groups:  # dealt round-robin, continuing across classes: folds differ by at most one
        order = rng.permutation(rows)
        fold_of[order] = (start + np.arange(len(order))) % k
        start += len(order)
    return [np.flatnonzero(fold_of == f) for f in range(k)]


def fit_probe(
    embeddings: np.ndarray,
    labels: np.ndarray,
    settings: FitSettings,
    info: dict[str, Any],
    where: str,
) -> Probe:
    """Fit a probe and measure it on samples it was not trained on.

    ``settings.folds`` 0: trained on a training split, measured on the held-out split. ``folds``
    K >= 2: each fold scored by a probe trained on the other K-1, the metrics (and the suggested
    threshold) from those out-of-fold scores of every label, and the probe returned trained on all
    labels. ``info`` gives the ``ProbeInfo`` fields the data decides (name, model, pretrained).
    """
    if settings.folds >= 2:
        outside = np.empty(len(labels), dtype=np.float64)
        for fold in fold_indices(labels, settings, where):
            rest = np.setdiff1d(np.arange(len(labels)), fold)
            outside[fold] = _fit(embeddings, labels, rest, settings, info).predict(embeddings[fold])
        probe = _fit(embeddings, labels, np.arange(len(labels)), settings, info)
        metrics = {"folds": settings.folds, **validation_metrics(outside, labels, settings.target)}
        return Probe(ProbeInfo(**{**probe.info.__dict__, "validation": metrics}), probe.weights)
    train, valid = split(labels, settings, where)
    probe = _fit(embeddings, labels, train, settings, info)
    metrics = validation_metrics(probe.predict(embeddings[valid]), labels[valid], settings.target)
    return Probe(ProbeInfo(**{**probe.info.__dict__, "validation": metrics}), probe.weights)


def _fit(
    embeddings: np.ndarray, labels: np.ndarray, train: np.ndarray, settings: FitSettings, info: dict[str, Any]
) -> Probe:
    """A probe trained on the rows ``train`` (no validation metrics yet)."""
    import torch

    x = torch.from_numpy(np.asarray(embeddings, dtype=np.float32))
    y = torch.from_numpy(labels.astype(np.float32))
    mean, scale = 0.0, 1.0
    if settings.target == "regression":
        mean = float(labels[train].mean())
        scale = float(labels[train].std()) or 1.0
    torch.manual_seed(settings.seed)
    dim = x.shape[1]
    if settings.kind == "mlp":
        net = torch.nn.Sequential(
            torch.nn.Linear(dim, settings.hidden), torch.nn.ReLU(), torch.nn.Linear(settings.hidden, 1)
        )
    else:
        net = torch.nn.Sequential(torch.nn.Linear(dim, 1))
    optimiser = torch.optim.AdamW(
        net.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
    )
    # Unit-norm CLIP embeddings have coordinates of ~1/sqrt(dim): standardised features (training
    # split statistics) let a few hundred steps reach a good fit; folded into w1/b1 afterwards.
    feature_mean = x[train].mean(0)
    feature_scale = x[train].std(0) + 1e-6
    x_train, y_train = (x[train] - feature_mean) / feature_scale, y[train]
    if settings.target == "binary":
        positives = float(y_train.sum())
        weight = torch.tensor((len(train) - positives) / positives)
        loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=weight)
        target = y_train
    else:
        loss_fn = torch.nn.MSELoss()
        target = (y_train - mean) / scale
    net.train()
    for _ in range(settings.epochs):
        optimiser.zero_grad()
        loss = loss_fn(net(x_train)[:, 0], target)
        loss.backward()
        optimiser.step()
    layers = [m for m in net if isinstance(m, torch.nn.Linear)]
    weights = {"w1": layers[0].weight, "b1": layers[0].bias}
    if settings.kind == "mlp":
        weights |= {"w2": layers[1].weight, "b2": layers[1].bias}
    with torch.no_grad():
        w1 = weights["w1"] / feature_scale
        weights["b1"] = weights["b1"] - w1 @ feature_mean
        weights["w1"] = w1
    arrays = {k: v.detach().numpy().astype(np.float32).copy() for k, v in weights.items()}
    training = {
        "samples": len(train),
        "epochs": settings.epochs,
        "learning_rate": settings.learning_rate,
        "weight_decay": settings.weight_decay,
        "seed": settings.seed,
        "final_loss": round(float(loss.detach()), 6),
    }
    draft = ProbeInfo(
        **info,
        kind=settings.kind,
        target=settings.target,
        dim=int(dim),
        hidden=settings.hidden if settings.kind == "mlp" else 0,
        target_mean=mean,
        target_scale=scale,
        training=training,
    )
    return Probe(draft, arrays)


def validation_metrics(predicted: np.ndarray, truth: np.ndarray, target: str) -> dict[str, Any]:
    """What the held-out split says of a probe (see the module docstring)."""
    predicted = np.asarray(predicted, dtype=np.float64)
    if target == "regression":
        error = predicted - truth
        pearson = float(np.corrcoef(predicted, truth)[0, 1]) if predicted.std() and truth.std() else 0.0
        return {
            "samples": len(truth),
            "rmse": round(math.sqrt(float((error**2).mean())), 6),
            "mae": round(float(np.abs(error).mean()), 6),
            "pearson": round(pearson, 6),
        }
    positive = truth == 1.0
    threshold = suggested_threshold(predicted, positive)
    return {
        "samples": len(truth),
        "positives": int(positive.sum()),
        "roc_auc": round(roc_auc(predicted, positive), 6),
        "accuracy_at_0_5": round(float(((predicted >= 0.5) == positive).mean()), 6),
        "suggested_threshold": round(threshold, 6),
        **{k: round(v, 6) for k, v in rates_at(predicted, positive, threshold).items()},
    }


def suggested_threshold(predicted: np.ndarray, positive: np.ndarray) -> float:
    """The score maximising Youden's J (TPR - FPR), as the midpoint to the next lower score.

    A sample is called positive when its score is >= the threshold. Ties in J go to the higher
    threshold (fewer samples flagged).
    """
    values = np.unique(predicted)[::-1]
    best, best_j = float(values[0]), -math.inf
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    for i, value in enumerate(values):
        flagged = predicted >= value
        j = (flagged & positive).sum() / n_pos - (flagged & ~positive).sum() / n_neg
        if j > best_j + 1e-12:
            lower = float(values[i + 1]) if i + 1 < len(values) else float(value)
            best, best_j = (float(value) + lower) / 2, float(j)
    return best


def rates_at(predicted: np.ndarray, positive: np.ndarray, threshold: float) -> dict[str, float]:
    """Precision, recall (TPR), false positive rate and accuracy when flagging scores >= threshold."""
    flagged = predicted >= threshold
    true_pos = float((flagged & positive).sum())
    return {
        "precision": true_pos / flagged.sum() if flagged.any() else 0.0,
        "recall": true_pos / positive.sum(),
        "false_positive_rate": float((flagged & ~positive).sum()) / max(1, int((~positive).sum())),
        "accuracy": float((flagged == positive).mean()),
    }
