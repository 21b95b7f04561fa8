import numpy as np

from pipeline.score.distribution import describe, histogram, kept_fraction, merge, quantile


def test_quantiles_and_kept_fractions_are_exact_to_a_bin() -> None:
    rng = np.random.default_rng(0)
    scores = rng.uniform(-0.2, 0.5, 20_000)
    counts = merge([histogram(scores[:7000]), histogram(scores[7000:])])
    assert counts.sum() == 20_000
    for q in (0.1, 0.5, 0.9):
        assert abs(quantile(counts, q) - np.quantile(scores, q)) <= 0.0011
    for t in (0.0, 0.28, 0.3):
        assert abs(kept_fraction(counts, t) - (scores >= t).mean()) <= 0.002


def test_describe_reports_thresholds_both_ways() -> None:
    scores = np.linspace(0.0, 0.399, 400)
    report = describe(merge([histogram(scores)]), (0.28,), (0.25,))
    assert report["count"] == 400
    assert abs(report["kept_at_threshold"]["0.28"] - 0.3) <= 0.005
    assert abs(report["threshold_for_top_fraction"]["0.25"] - 0.3) <= 0.002
    assert describe(merge([]), (0.28,), (0.25,)) == {"count": 0}
