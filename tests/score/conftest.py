"""A downloaded dataset and small CLIP checkpoints for the score tests."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pipeline.download.job import run as download
from pipeline.download.options import options_from_args
from pipeline.synthetic.server import WorldServer
from pipeline.synthetic.world import write_url_lists


@pytest.fixture(scope="session")
def downloaded(spark, world: Path, server: WorldServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session world downloaded into a dataset (3 raw shards, label and matched kept)."""
    root = tmp_path_factory.mktemp("scored")
    lists = write_url_lists(world, server.base_url, out=root / "lists")
    options = options_from_args(
        [
            "--urls",
            str(lists["parquet"]),
            "--dataset",
            str(root / "dataset"),
            "--allow-network",
            "127.0.0.1/32",
            "--samples-per-shard",
            "30",
            "--keep-cols",
            "label,matched",
        ]
    )
    download(spark, options)
    return root / "dataset"


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
