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

from pipeline.storage import Storage
from pipeline.submit import spark_submit_command
from pipeline.synthetic.server import WorldServer
from pipeline.synthetic.world import write_url_lists

pytestmark = pytest.mark.slow


def _start(args: list[str], log: Path, extra_env: dict[str, str]) -> subprocess.Popen:
    env = {**os.environ, **extra_env, "PYSPARK_PYTHON": sys.executable}
    handle = open(log, "ab")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        spark_submit_command("download", args), env=env, stdout=handle, stderr=handle, start_new_session=True
    )


def _kill_tree(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _complete(dataset: Storage) -> int:
    return sum(name.endswith("_stats.json") for name in dataset.names("raw"))


def _wait_for(predicate, process: subprocess.Popen, limit: float = 120.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and process.poll() is None:
        if predicate():
            return
        time.sleep(0.05)


def test_killed_runs_resume_to_the_same_samples(world: Path, tmp_path: Path, storage_root) -> None:
    root, env = storage_root
    with WorldServer(world, slow_seconds=0.15) as server:
        # Every URL is slow, so the job is mid-shard most of the time.
        lists = write_url_lists(world, f"{server.base_url}/fault/slow", out=tmp_path / "lists")
        url_list = f"{root}/lists/urls.parquet"
        Storage(root).write_bytes(Path(lists["parquet"]).read_bytes(), "lists", "urls.parquet")
        dataset = Storage(f"{root}/dataset")
        log = tmp_path / "spark.log"
        args = [
            "--urls",
            url_list,
            "--dataset",
            dataset.url,
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
            lambda: dataset.exists("_input"),
            lambda: _complete(dataset) >= 1,
            lambda: _complete(dataset) >= shards // 2,
        ]
        for moment in moments:
            process = _start(args, log, env)
            _wait_for(moment, process)
            assert process.poll() is None, f"job ended before it could be killed:\n{log.read_text()[-3000:]}"
            _kill_tree(process)
        final = _start(args, log, env)
        assert final.wait(timeout=300) == 0, log.read_text()[-3000:]

    names = dataset.names("raw")
    rows = [
        r for name in names if name.endswith(".parquet") for r in _read_table(dataset, name).to_pylist()
    ]
    assert sorted(r["row_index"] for r in rows) == list(range(80))
    assert all(r["status"] == "success" for r in rows), Counter(r["error_class"] for r in rows)
    members: Counter[str] = Counter()
    for name in names:
        if name.endswith(".tar"):
            with dataset.open("raw", name) as handle, tarfile.open(fileobj=handle) as tar:
                members.update(tar.getnames())
    assert set(members.values()) == {1}, "a sample was written twice"
    assert {m.split(".")[0] for m in members} == {r["uid"] for r in rows}
    assert _complete(dataset) == shards
    assert not [n for n in names if ".tmp." in n], "temporary files were left behind"


def _read_table(dataset: Storage, name: str):
    with dataset.open("raw", name) as handle:
        return pq.read_table(handle)
