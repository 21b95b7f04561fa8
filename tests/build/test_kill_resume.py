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

from tests.stages import build as run
from pipeline.submit import spark_submit_command
from testkit.raw_shards import fabricate_dataset
from tests.build.conftest import build_options, read_json
from tests.build.expected import check_final, expected_reasons

pytestmark = pytest.mark.slow

ARGS = ("--top-fraction", "0.8", "--min-caption-length", "3", "--samples-per-shard", "4", "--seed", "9")


def _start(dataset: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    handle = open(log, "ab")  # noqa: SIM115 - closed with the process
    command = spark_submit_command("build_shards", ["--dataset", str(dataset), *ARGS], master="local[1]")
    return subprocess.Popen(command, env=env, stdout=handle, stderr=handle, start_new_session=True)


def _kill_tree(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _markers(dataset: Path) -> int:
    return len(list((dataset / "final").glob("*_stats.json")))


def _wait_for(predicate, process: subprocess.Popen, limit: float = 300.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and process.poll() is None:
        if predicate():
            return
        time.sleep(0.02)


def test_killed_builds_resume_to_the_uninterrupted_result(spark, tmp_path: Path) -> None:
    dataset = tmp_path / "dataset"
    fabricate_dataset(dataset, shards=4, samples_per_shard=100, seed=2)
    reference = tmp_path / "reference"
    shutil.copytree(dataset, reference)
    log = tmp_path / "spark.log"
    # Kill during the selection (options recorded, no shard yet), then while shards are written.
    moments = [
        lambda: (dataset / "final" / "_options.json").exists(),
        lambda: _markers(dataset) >= 3,
    ]
    for moment in moments:
        process = _start(dataset, log)
        _wait_for(moment, process)
        assert process.poll() is None, f"job ended before it could be killed:\n{log.read_text()[-3000:]}"
        _kill_tree(process)
    assert not (dataset / "final" / "manifest.json").exists()
    partial = _markers(dataset)
    final = _start(dataset, log)
    assert final.wait(timeout=600) == 0, log.read_text()[-3000:]

    summary = read_json(dataset / "final" / "_summary.json")
    assert partial >= 3 and summary["shards_resumed"] == partial < summary["shards"]
    assert not list((dataset / "final").rglob("*.tmp.*")), "temporary files were left behind"
    expected = expected_reasons(dataset, {}, min_caption=3, top_fraction=0.8)
    check_final(dataset, expected, seed=9, per_shard=4, keep_cols=False)
    # The same shards, byte for byte, as one uninterrupted in-process build.
    run(spark, build_options(reference, *ARGS))
    assert read_json(dataset / "final" / "manifest.json") == read_json(reference / "final" / "manifest.json")
