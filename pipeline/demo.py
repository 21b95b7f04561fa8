"""``corpusforge demo``: the pipeline on the synthetic world, served from a local HTTP server."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from pipeline.submit import run_job
from pipeline.synthetic.server import WorldServer
from pipeline.synthetic.world import WorldSpec, generate_world, write_url_lists

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoOptions:
    workdir: Path
    images: int = 1000
    faults_per_kind: int = 2
    seed: int = 0
    master: str = "local[2]"


def run_demo(options: DemoOptions) -> Path:
    """Generate (or reuse) the world, serve it, run the download job; return the dataset path."""
    world = options.workdir / "world"
    if not (world / "world.json").exists():
        generate_world(world, WorldSpec(images=options.images, seed=options.seed))
    dataset = options.workdir / "dataset"
    with WorldServer(world, slow_seconds=4.0) as server:
        lists = write_url_lists(world, server.base_url, options.faults_per_kind, options.seed, bad_rows=True)
        log.info("serving %s at %s", world, server.base_url)
        run_job(
            "download",
            [
                "--urls",
                str(lists["parquet"]),
                "--dataset",
                str(dataset),
                # The demo server is on loopback, which the safety defaults refuse otherwise.
                "--allow-network",
                "127.0.0.1/32",
                "--keep-cols",
                "label,matched,fault",
                "--samples-per-shard",
                "250",
                "--timeout",
                "3",
                "--overwrite",
            ],
            master=options.master,
        )
    log.info("demo dataset written to %s", dataset)
    return dataset
