"""Warm-up then cosine decay, as open_clip's cosine_lr."""

from __future__ import annotations

import math

import pytest

from pipeline.train.schedule import cosine_lr


def test_linear_warmup_then_cosine_to_zero() -> None:
    lrs = [cosine_lr(step, 1.0, 10, 110) for step in range(110)]
    assert lrs[:10] == pytest.approx([(i + 1) / 10 for i in range(10)])
    assert lrs[10] == pytest.approx(1.0)
    assert lrs[60] == pytest.approx(0.5)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False))
    assert cosine_lr(110, 1.0, 10, 110) == pytest.approx(0.0, abs=1e-12)
    assert cosine_lr(500, 1.0, 10, 110) == pytest.approx(0.0, abs=1e-12)  # past the end: stays at 0


def test_matches_open_clip_train_formula() -> None:
    base, warmup, total = 5e-4, 7, 40
    for step in range(warmup, total):
        e, es = step - warmup, total - warmup
        assert cosine_lr(step, base, warmup, total) == pytest.approx(
            0.5 * (1 + math.cos(math.pi * e / es)) * base
        )
