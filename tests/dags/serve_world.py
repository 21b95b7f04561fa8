"""Run with the MAIN venv's Python by the DAG tests (the Airflow venv has no torch or Pillow).

``python tests/dags/serve_world.py OUT`` draws a small synthetic world in OUT/world, writes a
randomly initialised corpusforge-tiny checkpoint, serves the world on 127.0.0.1, writes its URL
lists, prints one JSON line with the paths and the server's URL, and serves until its standard
input is closed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import open_clip
import torch

from pipeline.score.model import register_configs
from pipeline.synthetic.server import WorldServer
from pipeline.synthetic.world import WorldSpec, generate_world, write_url_lists
from pipeline.train.contrastive import save_checkpoint

# 40 images in 2 raw shards of 20; 3 of them are planted copies of the 6 benchmark images.
SPEC = WorldSpec(images=40, seed=3, benchmark_images=6, planted_duplicates=3, min_side=200, max_side=360)


def main(out: Path) -> None:
    """Prepare the world and the checkpoint, then serve until stdin closes."""
    world = generate_world(out / "world", SPEC)
    register_configs()
    torch.manual_seed(7)
    checkpoint = save_checkpoint(open_clip.create_model("corpusforge-tiny"), out / "tiny.pt")
    with WorldServer(world, slow_seconds=3.0) as server:
        lists = write_url_lists(world, server.base_url, out=out / "lists")
        ready = {
            "base_url": server.base_url,
            "urls": str(lists["parquet"]),
            "benchmark": str(world / "benchmark"),
            "checkpoint": str(checkpoint),
            "images": SPEC.images,
        }
        print(json.dumps(ready), flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
