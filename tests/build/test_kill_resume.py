"""SIGKILL spark-submit jobs/build_shards.py mid-run, rerun, and get what an uninterrupted build gives."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.storage import Storage
from pipeline.submit import spark_submit_command
from testkit.raw_shards import fabricate_dataset
from tests.build.conftest import build_options, read_json
from tests.build.expected import check_final, expected_reasons
from tests.stages import build as run

pytestmark = pytest.mark.slow

ARGS = ("--top-fraction", "0.8", "--min-caption-length", "3", "--samples-per-shard", "4", "--seed", "9")


def _start(dataset: Storage, log: Path, extra_env: dict[str, str]) -> subprocess.Popen:
    env = {**os.environ, **extra_env, "PYSPARK_PYTHON": sys.executable}
    handle = open(log, "ab")  # noqa: SIM115 - closed with the process
    command = spark_submit_command("build_shards", ["--dataset", dataset.url, *ARGS], master="local[1]")
    return subprocess.Popen(command, env=env, stdout=handle, stderr=handle, start_new_session=True)


def _kill_tree(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _markers(dataset: Storage) -> int:
    return sum(name.endswith("_stats.json") for name in dataset.names("final"))


def _wait_for(predicate, process: subprocess.Popen, limit: float = 300.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and process.poll() is None:
        if predicate():
            return
        time.sleep(0.02)


# On S3 only: an object store's rename is a copy and a delete, the harder case for the commit
# protocol, and the same moments on local disk are covered by the cluster tests' driver kill
# (tests/cluster/test_jobs_on_cluster.py -k "build and driver"); CI time is bounded.
@pytest.mark.parametrize("storage_root", ["s3"], indirect=True)
def test_killed_builds_resume_to_the_uninterrupted_result(spark, tmp_path: Path, storage_root) -> None:
    root, env = storage_root
    local = tmp_path / "dataset"
    fabricate_dataset(local, shards=4, samples_per_shard=40, seed=2)
    reference = tmp_path / "reference"
    shutil.copytree(local, reference)
    dataset = Storage(f"{root}/dataset")
    dataset.fs.put(str(local), dataset.root, recursive=True)  # no-op copy when root is local
    log = tmp_path / "spark.log"
    # Kill during the selection (options recorded, no shard yet), then while shards are written.
    moments = [
        lambda: dataset.exists("final", "_options.json"),
        lambda: _markers(dataset) >= 3,
    ]
    for moment in moments:
        process = _start(dataset, log, env)
        _wait_for(moment, process)
        assert process.poll() is None, f"job ended before it could be killed:\n{log.read_text()[-3000:]}"
        _kill_tree(process)
    assert not dataset.exists("final", "manifest.json")
    partial = _markers(dataset)
    final = _start(dataset, log, env)
    assert final.wait(timeout=600) == 0, log.read_text()[-3000:]

    assert not [n for n in dataset.names("final") if ".tmp." in n], "temporary files were left behind"
    # What the job wrote, wherever it lives, checked on a local copy.
    result = tmp_path / "result"
    shutil.rmtree(result, ignore_errors=True)
    dataset.fs.get(dataset.root + "/", str(result), recursive=True)
    summary = read_json(result / "final" / "_summary.json")
    assert partial >= 3 and summary["shards_resumed"] == partial < summary["shards"]
    expected = expected_reasons(result, {}, min_caption=3, top_fraction=0.8)
    check_final(result, expected, seed=9, per_shard=4, keep_cols=False)
    # The same shards, byte for byte, as one uninterrupted in-process build.
    run(spark, build_options(reference, *ARGS))
    assert read_json(result / "final" / "manifest.json") == read_json(reference / "final" / "manifest.json")
