"""SIGKILL the whole spark-submit process tree at several moments, rerun, and lose nothing."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tarfile
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.submit import spark_submit_command
from pipeline.synthetic.server import WorldServer
from pipeline.synthetic.world import write_url_lists

pytestmark = pytest.mark.slow


def _start(args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    handle = open(log, "ab")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        spark_submit_command("download", args), env=env, stdout=handle, stderr=handle, start_new_session=True
    )


def _kill_tree(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _complete(dataset: Path) -> int:
    return len(list((dataset / "raw").glob("*_stats.json"))) if (dataset / "raw").exists() else 0


def _wait_for(predicate, process: subprocess.Popen, limit: float = 120.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and process.poll() is None:
        if predicate():
            return
        time.sleep(0.05)


def test_killed_runs_resume_to_the_same_samples(world: Path, tmp_path: Path) -> None:
    with WorldServer(world, slow_seconds=0.15) as server:
        # Every URL is slow, so the job is mid-shard most of the time.
        lists = write_url_lists(world, f"{server.base_url}/fault/slow", out=tmp_path / "lists")
        dataset = tmp_path / "dataset"
        log = tmp_path / "spark.log"
        args = [
            "--urls",
            str(lists["parquet"]),
            "--dataset",
            str(dataset),
            "--allow-network",
            "127.0.0.1/32",
            "--samples-per-shard",
            "8",
            "--concurrency",
            "4",
            "--timeout",
            "10",
        ]
        shards = 10
        # Kill during start-up/ingest, after the first complete shard, and around the middle.
        moments = [
            lambda: (dataset / "_input").exists(),
            lambda: _complete(dataset) >= 1,
            lambda: _complete(dataset) >= shards // 2,
        ]
        for moment in moments:
            process = _start(args, log)
            _wait_for(moment, process)
            assert process.poll() is None, f"job ended before it could be killed:\n{log.read_text()[-3000:]}"
            _kill_tree(process)
        final = _start(args, log)
        assert final.wait(timeout=300) == 0, log.read_text()[-3000:]

    rows = [r for f in sorted((dataset / "raw").glob("*.parquet")) for r in pq.read_table(f).to_pylist()]
    assert sorted(r["row_index"] for r in rows) == list(range(80))
    assert all(r["status"] == "success" for r in rows), Counter(r["error_class"] for r in rows)
    members: Counter[str] = Counter()
    for path in (dataset / "raw").glob("*.tar"):
        with tarfile.open(path) as tar:
            members.update(tar.getnames())
    assert set(members.values()) == {1}, "a sample was written twice"
    assert {m.split(".")[0] for m in members} == {r["uid"] for r in rows}
    assert _complete(dataset) == shards
    assert not list((dataset / "raw").glob("*.tmp.*")), "temporary files were left behind"
