"""Score distributions as fixed-bin histograms: mergeable across shards, exact to one bin."""

from __future__ import annotations

from typing import Any

import numpy as np

BINS = 2000  # over [-1, 1]: quantiles and kept fractions are exact to 0.001
_EDGES = np.linspace(-1.0, 1.0, BINS + 1)


def histogram(scores: np.ndarray) -> list[int]:
    """Counts of ``scores`` in the fixed bins (values outside [-1, 1] are clipped in)."""
    counts, _ = np.histogram(np.clip(scores, -1.0, 1.0), bins=_EDGES)
    return counts.astype(int).tolist()


def merge(histograms: list[list[int]]) -> np.ndarray:
    total = np.zeros(BINS, dtype=np.int64)
    for h in histograms:
        total += np.asarray(h, dtype=np.int64)
    return total


def quantile(counts: np.ndarray, q: float) -> float:
    """The score below which a fraction ``q`` of samples lie (upper bin edge)."""
    cumulative = np.cumsum(counts)
    index = int(np.searchsorted(cumulative, q * cumulative[-1], side="left"))
    return float(_EDGES[min(index + 1, BINS)])


def kept_fraction(counts: np.ndarray, threshold: float) -> float:
    """Fraction of samples with score >= ``threshold`` (threshold rounded down to a bin edge)."""
    index = int(np.searchsorted(_EDGES, threshold, side="right")) - 1
    index = max(0, min(index, BINS))
    return float(counts[index:].sum() / max(1, counts.sum()))


def describe(
    counts: np.ndarray, thresholds: tuple[float, ...], top_fractions: tuple[float, ...]
) -> dict[str, Any]:
    """Quantiles, kept fraction per absolute threshold, threshold per kept fraction."""
    if counts.sum() == 0:
        return {"count": 0}
    return {
        "count": int(counts.sum()),
        "quantiles": {
            f"{q:g}": round(quantile(counts, q), 4)
            for q in (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)
        },
        "kept_at_threshold": {f"{t:g}": round(kept_fraction(counts, t), 4) for t in thresholds},
        "threshold_for_top_fraction": {f"{f:g}": round(quantile(counts, 1.0 - f), 4) for f in top_fractions},
        "histogram": {"bins": BINS, "range": [-1.0, 1.0], "counts": counts.astype(int).tolist()},
    }
