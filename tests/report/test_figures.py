"""Figures from edge-case data: hostile captions, broken images, scores at the ends of the range."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from pipeline.report.collect import (
    SIZE_EDGES,
    Dedup,
    Downloads,
    Missing,
    Outcome,
    Pair,
    Scores,
    SizeHistograms,
    Threshold,
    Training,
)
from pipeline.report.figures import (
    _rebinned,
    dedup_distances_png,
    evaluation_png,
    outcomes_png,
    pairs_png,
    scores_png,
    sizes_png,
    training_png,
)
from pipeline.score.distribution import BINS, histogram
from tests.report.browser import is_png


def image_size(png: bytes) -> tuple[int, int]:
    assert is_png(png)
    with Image.open(io.BytesIO(png)) as image:
        return image.size


def jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (300, 120), "orange").save(buffer, format="JPEG")
    return buffer.getvalue()


def test_pairs_grid_survives_hostile_captions_and_broken_images() -> None:
    captions = [
        r"price $5 and $\frac{ unbalanced maths $x^",
        "word " * 1000,
        "tab\tnull\x00 bell\x07 newline\nend",
        "猫の写真 🐈‍⬛ كلب",
        "",
        "<script>alert(1)</script>",
    ]
    images = [jpeg(), b"not an image", None, jpeg()[:200], jpeg(), jpeg()]
    pairs = [
        Pair(f"{i:032x}", 0, c, None if i == 2 else 0.1 * i, "low_clip_score" if i % 2 else None, data)
        for i, (c, data) in enumerate(zip(captions, images, strict=True))
    ]
    width, height = image_size(pairs_png(pairs, "dropped $pairs$"))
    assert width > 800 and height > 600


def test_rebinning_keeps_every_sample() -> None:
    rng = np.random.default_rng(0)
    for scores in (rng.normal(0.25, 0.05, 5000), np.full(10, 1.0), np.full(10, -1.0), np.array([-1.0, 1.0])):
        counts = np.asarray(histogram(scores))
        edges, merged = _rebinned(counts)
        assert merged.sum() == len(scores)
        assert len(edges) == len(merged) + 1 and np.all(np.diff(edges) > 0)
        assert edges[0] <= scores.min() and edges[-1] >= min(1.0, scores.max())


@pytest.mark.parametrize("values", [[1.0] * 5, [-1.0] * 5, [0.3]])
def test_score_histogram_at_the_ends_of_the_range(values: list[float]) -> None:
    counts = tuple(histogram(np.asarray(values)))
    threshold = Threshold("min_clip_score", 0.28, 0.5, 10, 4, {"low_clip_score": 6})
    for chosen in (threshold, Missing("build_shards has not run yet")):
        scores = Scores("m", "p", len(values), 1, 1, True, counts, {0.28: 0.5}, {0.1: 0.3}, 0.3, chosen)
        assert image_size(scores_png(scores))[0] > 500
    assert len(counts) == BINS


def test_other_figures_draw() -> None:
    outcomes = (Outcome("success", "success", 7), Outcome("timeout", "failed", 3))
    downloads = Downloads(1, 1, 10, {"success": 7, "failed": 3}, outcomes, 0, None)
    bins = len(SIZE_EDGES) - 1
    ones = tuple([1] * bins)
    sizes = SizeHistograms(bins, ones, ones, ones, ones, {"width": (1, 60000)}, (("256x256", bins),))
    dedup = Dedup({"benchmark_duplicate": 2}, {"benchmark_duplicate": {0: 1, 7: 1}}, (), 2, (), (), None)
    training = Training(
        "t", "t/metrics.csv", {"train/loss": ((1, 2.0),), "val/image_to_text_R@1": ((1, 0.1),)}, None, 0
    )
    for png in (outcomes_png(downloads), sizes_png(sizes), dedup_distances_png(dedup)):
        assert image_size(png)[0] > 300
    assert image_size(training_png(training))[0] > 300
    assert image_size(evaluation_png(training))[0] > 300
    nothing = Training("t", "t/metrics.csv", {"custom": ((1, 1.0),)}, None, 0)
    assert training_png(nothing) is None and evaluation_png(nothing) is None
