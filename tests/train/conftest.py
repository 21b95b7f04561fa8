"""Tiny WebDataset shards of synthetic scenes for the trainer tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from testkit.scene_shards import write_scene_shards as write_shards


@pytest.fixture(scope="session")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four training shards of 48 samples each in ``final/``."""
    root = tmp_path_factory.mktemp("train_shards")
    write_shards(root / "final", shards=4, per_shard=48)
    return root / "final"


@pytest.fixture(scope="session")
def val_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One held-out shard of 40 samples."""
    root = tmp_path_factory.mktemp("val_shards")
    write_shards(root / "val", shards=1, per_shard=40, seed=99)
    return root / "val"
