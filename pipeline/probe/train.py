"""``corpusforge probe train``: labels + stored embeddings -> a validated probe file."""

from __future__ import annotations

import logging
from typing import Any

from pipeline.probe.embeddings import labelled_embeddings
from pipeline.probe.fit import fit_probe
from pipeline.probe.labels import read_labels
from pipeline.probe.model import Probe, save_probe
from pipeline.probe.options import ProbeTrainOptions

log = logging.getLogger(__name__)


def train_probe(options: ProbeTrainOptions) -> Probe:
    """Read the labels and their embeddings, fit, validate and write the probe; returns it."""
    labels = read_labels(options.labels, options.target)
    data = labelled_embeddings(options.dataset, labels)
    probe = fit_probe(
        data.embeddings,
        data.labels,
        options.fit_settings(),
        {"name": options.name, "model": data.model, "pretrained": data.pretrained},
        where=f"--labels {options.labels}",
    )
    save_probe(probe, options.output)
    log.info("probe %s written to %s: %s", options.name, options.output, probe.info.validation)
    return probe


def format_result(probe: Probe, output: str) -> str:
    """The command's final line: where the probe is and how it validated."""
    info = probe.info
    metrics: dict[str, Any] = info.validation
    folds = f" (out-of-fold, {metrics['folds']} folds)" if metrics.get("folds") else ""
    if info.target == "binary":
        measured = (
            f"validation ROC AUC {metrics['roc_auc']:.3f} on {metrics['samples']} samples{folds} "
            f"({metrics['positives']} positive); suggested threshold {metrics['suggested_threshold']:.3f} "
            f"(precision {metrics['precision']:.2f}, recall {metrics['recall']:.2f})"
        )
    else:
        measured = (
            f"validation RMSE {metrics['rmse']:.4f}, Pearson {metrics['pearson']:.3f} "
            f"on {metrics['samples']} samples{folds}"
        )
    return (
        f"probe {info.name} ({info.kind}, {info.target}, {info.model} {info.pretrained}): {measured}; "
        f"wrote {output}"
    )
