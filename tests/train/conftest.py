"""Tiny WebDataset shards of synthetic scenes for the trainer tests."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pytest

from pipeline.shards.tar_writer import TarWriter
from pipeline.synthetic.scenes import random_scene, render


def write_shards(folder: Path, shards: int, per_shard: int, seed: int = 0, side: int = 64) -> list[Path]:
    """``shards`` tars of ``per_shard`` samples (KEY.jpg/.txt/.json, keys unique) and sizes.json."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    paths, sizes = [], {}
    for s in range(shards):
        path = folder / f"{s:06d}.tar"
        with open(path, "wb") as handle:
            writer = TarWriter(handle)
            for i in range(per_shard):
                scene = random_scene(rng)
                buffer = io.BytesIO()
                render(scene, (side, side), rng).save(buffer, format="JPEG", quality=85)
                key = f"s{seed}x{s:04d}x{i:05d}"
                meta = json.dumps({"label": scene.label}).encode()
                writer.write(key, {"jpg": buffer.getvalue(), "txt": scene.caption.encode(), "json": meta})
            writer.close()
        sizes[path.name] = per_shard
        paths.append(path)
    (folder / "sizes.json").write_text(json.dumps(sizes))
    return paths


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
