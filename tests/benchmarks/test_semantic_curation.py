"""benchmarks/semantic_curation.py: the numpy SemDeDup sweep that picks arm (b)'s threshold."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from semantic_curation import choose_threshold, semdedup_sweep  # noqa: E402


def _twins(scenes: int = 60, dim: int = 16, noise: float = 0.02) -> tuple[np.ndarray, list[str]]:
    """Every scene rendered twice: unit embeddings close within a pair, far between pairs."""
    rng = np.random.default_rng(0)
    base = np.repeat(rng.normal(size=(scenes, dim)), 2, axis=0)
    points = base + noise * rng.normal(size=base.shape)
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32), [
        str(i // 2) for i in range(2 * scenes)
    ]


def test_sweep_removes_one_of_each_twin_pair_and_counts_repeats() -> None:
    points, scenes = _twins()
    sweep = semdedup_sweep(points, scenes, clusters=0, grid=(0.9, 0.99999))
    assert sweep["samples"] == 120 and sweep["clusters"] == 10
    assert sweep["scene_repeats"] == 60 and sweep["identical_scene_pairs_total"] == 60
    loose, strict = sweep["grid"]
    # a twin pair k-means splits between two clusters is never compared (as in SemDeDup)
    assert 55 <= loose["removed"] <= 60 and loose["pairs_identical_scene"] == 1.0
    assert strict["removed"] < 60


def test_choose_threshold_is_the_largest_reaching_the_share() -> None:
    sweep = {
        "grid": [{"threshold": t, "removed_share": r} for t, r in ((0.9, 0.5), (0.95, 0.3), (0.99, 0.1))]
    }
    assert choose_threshold(sweep, 0.25) == 0.95
    assert choose_threshold(sweep, 0.6) == 0.9  # none reaches it: the loosest
