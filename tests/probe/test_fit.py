"""Fitting and applying probes on planted embeddings (no Spark, no model): fast."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import UserInputError
from pipeline.probe.fit import FitSettings, fit_probe, suggested_threshold
from pipeline.probe.labels import read_labels
from pipeline.probe.model import load_probe, save_probe
from pipeline.probe.options import ProbeTrainOptions

INFO = {"name": "watermark", "model": "corpusforge-tiny", "pretrained": "/m.pt"}


def planted(n: int = 200, dim: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors whose first coordinate is shifted for the positives (30 %)."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.3).astype(np.float64)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    x[:, 0] += 4.0 * labels
    return x / np.linalg.norm(x, axis=1, keepdims=True), labels


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_probe_separates_a_planted_class_and_round_trips(kind: str, tmp_path: Path) -> None:
    x, y = planted()
    probe = fit_probe(x, y, FitSettings(kind=kind, hidden=16), INFO, "test")
    v = probe.info.validation
    assert v["roc_auc"] > 0.85 and v["recall"] > 0.7 and v["samples"] == 40
    path = tmp_path / "p.safetensors"
    save_probe(probe, str(path))
    again = load_probe(str(path))
    assert again.info == probe.info
    assert np.array_equal(again.predict(x), probe.predict(x))


def test_regression_probe_predicts_the_value() -> None:
    x, _ = planted()
    target = 5 + 3 * x[:, 1].astype(np.float64)
    probe = fit_probe(x, target, FitSettings(target="regression", epochs=400), INFO, "test")
    assert probe.info.validation["pearson"] > 0.9
    assert abs(float(probe.predict(x).mean()) - float(target.mean())) < 0.5


def test_suggested_threshold_separates_perfectly_separable_scores() -> None:
    scores = np.array([0.1, 0.2, 0.3, 0.7, 0.9])
    assert suggested_threshold(scores, np.array([0, 0, 0, 1, 1], dtype=bool)) == pytest.approx(0.5)


def test_labels_formats(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "l.txt").write_text("# comment\na 1\nb\t0\n\nc,true\n")
    assert read_labels(str(tmp_path / "l.txt"), "binary") == {"a": 1.0, "b": 0.0, "c": 1.0}
    pq.write_table(pa.table({"uid": ["a", "b"], "label": [4.5, 6.0]}), tmp_path / "l.parquet")
    assert read_labels(str(tmp_path / "l.parquet"), "regression") == {"a": 4.5, "b": 6.0}
    (tmp_path / "twice.csv").write_text("a,1\na,0\n")
    with pytest.raises(UserInputError, match="twice.csv, line 2: uid a is labelled twice"):
        read_labels(str(tmp_path / "twice.csv"), "binary")


def test_cross_validated_probe_measures_every_label_and_trains_on_all() -> None:
    x, y = planted()
    probe = fit_probe(x, y, FitSettings(folds=4), INFO, "test")
    v = probe.info.validation
    assert v["folds"] == 4 and v["samples"] == 200 and v["positives"] == int(y.sum())
    assert probe.info.training["samples"] == 200
    assert v["roc_auc"] > 0.85 and v["recall"] > 0.7
    flagged = probe.predict(x) >= v["suggested_threshold"]
    assert flagged[y == 1].mean() > 0.7 and flagged[y == 0].mean() < 0.3
    regression = fit_probe(
        x, 5 + 3 * x[:, 1].astype(np.float64), FitSettings(target="regression", folds=3), INFO, "t"
    )
    assert regression.info.validation["samples"] == 200 and regression.info.validation["pearson"] > 0.8
    with pytest.raises(UserInputError, match="only 3 samples of class 1.*--folds 4"):
        fit_probe(x[:40], np.r_[np.ones(3), np.zeros(37)], FitSettings(folds=4), INFO, "where")
    with pytest.raises(UserInputError, match="--folds must be 0"):
        ProbeTrainOptions(dataset="/d", labels="/l.csv", name="w", output="/p.safetensors", folds=1)
