"""Serving a synthetic world and running the download job on it (demo, benchmarks)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pipeline.submit import run_job
from pipeline.synthetic.server import WorldServer
from pipeline.synthetic.world import write_url_lists


def download_world(
    world: Path,
    dataset: Path,
    extra_args: Sequence[str] = (),
    faults_per_kind: int = 0,
    bad_rows: bool = False,
    seed: int = 0,
    master: str = "local[2]",
    slow_seconds: float = 4.0,
) -> None:
    """Serve ``world`` on 127.0.0.1 and download it into ``dataset`` with ``spark-submit``.

    The world's ``label`` and ``matched`` columns are kept, so later stages can be measured.
    """
    with WorldServer(world, slow_seconds=slow_seconds) as server:
        lists = write_url_lists(world, server.base_url, faults_per_kind, seed, bad_rows=bad_rows)
        args = [
            "--urls", str(lists["parquet"]),
            "--dataset", str(dataset),
            # The server is on loopback, which the safety defaults refuse otherwise.
            "--allow-network", "127.0.0.1/32",
            # A proxy named in the environment could not reach this machine's loopback server.
            "--proxy", "none",
            "--keep-cols", "label,matched,fault",
            *extra_args,
        ]  # fmt: skip
        run_job("download", args, master=master)
