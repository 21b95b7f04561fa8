"""Small CLIP checkpoints for the score tests (the downloaded dataset is in tests/conftest.py)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def random_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised corpusforge-tiny checkpoint (fixed seed)."""
    import open_clip
    import torch

    from pipeline.score.model import register_configs
    from pipeline.train.contrastive import save_checkpoint

    register_configs()
    torch.manual_seed(random.Random(7).randint(0, 1000))
    return save_checkpoint(
        open_clip.create_model("corpusforge-tiny"), tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    )
