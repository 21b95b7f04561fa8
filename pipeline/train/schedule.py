"""Learning-rate schedule: linear warm-up, then cosine decay to zero (open_clip's ``cosine``)."""

from __future__ import annotations

import math


def cosine_lr(step: int, base_lr: float, warmup_steps: int, total_steps: int) -> float:
    """Learning rate of optimiser step ``step`` (0-based)."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * base_lr * (1 + math.cos(math.pi * min(1.0, progress)))


def set_lr(optimizer: object, lr: float) -> None:
    """Set the learning rate of every parameter group."""
    for group in optimizer.param_groups:  # type: ignore[attr-defined]
        group["lr"] = lr
