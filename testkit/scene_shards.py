"""Small WebDataset shards of synthetic scenes: training data for tests, benchmarks and tries."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

from tqdm import tqdm

from pipeline.shards.tar_writer import TarWriter
from pipeline.synthetic.scenes import caption_language, random_scene, render


def write_scene_shards(
    folder: str | Path, shards: int, per_shard: int, seed: int = 0, side: int = 64, language: str = "en"
) -> list[Path]:
    """Write ``shards`` tars of ``per_shard`` samples (``KEY.jpg/.txt/.json``) and ``sizes.json``.

    Keys (``s{seed}x{shard}x{index}``) are unique across seeds; images are ``side`` px squares.
    Captions are in ``language`` (``en``, ``zh`` or ``mixed``, as a synthetic world's); the
    pictures are the same whatever the language.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    language_rng = random.Random(f"{seed}-language")
    paths, sizes = [], {}
    for s in tqdm(range(shards), desc="writing scene shards", unit=" shard", disable=shards < 8):
        path = folder / f"{s:06d}.tar"
        with open(path, "wb") as handle:
            writer = TarWriter(handle)
            for i in range(per_shard):
                scene = random_scene(rng)
                buffer = io.BytesIO()
                render(scene, (side, side), rng).save(buffer, format="JPEG", quality=85)
                meta = json.dumps({"label": scene.label}).encode()
                writer.write(
                    f"s{seed}x{s:04d}x{i:05d}",
                    {
                        "jpg": buffer.getvalue(),
                        "txt": scene.caption_in(caption_language(language, language_rng)).encode(),
                        "json": meta,
                    },
                )
            writer.close()
        sizes[path.name] = per_shard
        paths.append(path)
    (folder / "sizes.json").write_text(json.dumps(sizes))
    return paths
