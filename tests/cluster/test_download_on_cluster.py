"""The download job on a real standalone cluster: a worker or the driver dies mid-job, nothing is lost.

Every URL is slow (0.5 s), so each shard takes seconds and the kill lands while both executors
are busy. Outputs must be exactly-once: every input row appears once in raw/*.parquet, the tars
hold exactly the successes, once each.
"""

from __future__ import annotations

import json
import tarfile
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.synthetic.server import WorldServer
from pipeline.synthetic.world import write_url_lists
from tests.cluster.standalone import StandaloneCluster

pytestmark = pytest.mark.slow

ROWS = 80  # the session world's corpus size
SHARDS = 10


def _complete(dataset: Path) -> int:
    return len(list((dataset / "raw").glob("*_stats.json"))) if (dataset / "raw").exists() else 0


def _wait_for_shards(dataset: Path, count: int, process, limit: float = 180.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and process.poll() is None and _complete(dataset) < count:
        time.sleep(0.1)


def assert_exactly_once(dataset: Path, rows: int) -> list[dict]:
    """Every input row once in the parquets, every success once in the tars and nothing else."""
    out = [r for f in sorted((dataset / "raw").glob("*.parquet")) for r in pq.read_table(f).to_pylist()]
    assert sorted(r["row_index"] for r in out) == list(range(rows)), "a row is missing or repeated"
    members: Counter[str] = Counter()
    for path in sorted((dataset / "raw").glob("*.tar")):
        with tarfile.open(path) as tar:
            members.update(tar.getnames())
    assert not members or set(members.values()) == {1}, "a tar member was written twice"
    stored = Counter(name.split(".")[0] for name in members)
    successes = {r["uid"] for r in out if r["status"] == "success"}
    assert set(stored) == successes and set(stored.values()) <= {3}
    return out


def _args(lists: dict[str, Path], dataset: Path) -> list[str]:
    return [
        "--urls",
        str(lists["parquet"]),
        "--dataset",
        str(dataset),
        "--allow-network",
        "127.0.0.1/32",
        "--samples-per-shard",
        str(ROWS // SHARDS),
        "--concurrency",
        "2",
        "--timeout",
        "20",
    ]


def test_a_worker_killed_mid_job_is_survived_by_task_retry(
    spark_cluster: StandaloneCluster, world: Path, tmp_path: Path
) -> None:
    dataset, log = tmp_path / "dataset", tmp_path / "driver.log"
    with WorldServer(world, slow_seconds=0.5) as server:
        lists = write_url_lists(world, f"{server.base_url}/fault/slow", out=tmp_path / "lists")
        driver = spark_cluster.submit("download", _args(lists, dataset), log)
        _wait_for_shards(dataset, 2, driver)
        assert driver.poll() is None and _complete(dataset) < SHARDS, log.read_text()[-3000:]
        killed = spark_cluster.kill_worker(1)
        assert len(killed) >= 2, "the worker had no executor to lose"
        assert driver.wait(timeout=300) == 0, log.read_text()[-5000:]
    text = log.read_text()
    # The kill did hit running work: Spark lost the executor and reran its task elsewhere.
    assert "Lost executor" in text or "ExecutorLostFailure" in text, text[-5000:]
    rows = assert_exactly_once(dataset, ROWS)
    assert all(r["status"] == "success" for r in rows), Counter(r["error_class"] for r in rows)
    summary = json.loads((dataset / "raw" / "_summary.json").read_text())
    assert summary["rows"] == ROWS and summary["successes"] == ROWS and summary["shards"] == SHARDS


def test_a_driver_killed_mid_job_resumes_exactly_once(
    spark_cluster: StandaloneCluster, world: Path, tmp_path: Path
) -> None:
    dataset, log = tmp_path / "dataset", tmp_path / "driver.log"
    with WorldServer(world, slow_seconds=0.5) as server:
        lists = write_url_lists(world, f"{server.base_url}/fault/slow", out=tmp_path / "lists")
        driver = spark_cluster.submit("download", _args(lists, dataset), log)
        _wait_for_shards(dataset, 2, driver)
        assert driver.poll() is None and _complete(dataset) < SHARDS, log.read_text()[-3000:]
        assert spark_cluster.kill_driver(), "no driver process was found to kill"
        driver.wait()
        done_before = _complete(dataset)
        rerun = spark_cluster.submit("download", _args(lists, dataset), log)
        assert rerun.wait(timeout=300) == 0, log.read_text()[-5000:]
    rows = assert_exactly_once(dataset, ROWS)
    assert all(r["status"] == "success" for r in rows), Counter(r["error_class"] for r in rows)
    summary = json.loads((dataset / "raw" / "_summary.json").read_text())
    assert summary["shards"] == SHARDS and summary["successes"] == ROWS
    assert summary["shards_resumed"] >= done_before >= 2  # kept, not redone
    assert not list((dataset / "raw").glob("*.tmp.*")), "temporary files were left behind"
