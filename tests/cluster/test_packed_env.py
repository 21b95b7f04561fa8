"""Stages on the standalone cluster from a packed environment, as ``make package`` makes it.

CI runs download: its environment is built by tools/pack_env.py from this checkout's wheel (with
its C extension), without pyspark (Spark brings its own) and without the model stack, because
the CUDA build of torch the project pins is ~5 GB installed, too much to build and ship on every
run. It is cached in pytest's cache folder under a key of the wheel's contents and its
requirements, so a session rebuilds it only when either changed. Score needs the full
environment: its test runs only by hand, on ``make package``'s output (docs/scaling.md).

The job is submitted as a user submits it: ``--archives ENV.tar.gz#environment`` and
``spark.pyspark.python=./environment/bin/python``; the driver (client mode) runs the built
environment's own interpreter (``spark.pyspark.driver.python``), from a folder outside the
checkout, with a driver script copied there and PYTHONPATH holding nothing but the tests' socket
guard. The driver and each executor prove where their Python came from (tests/cluster/
packed_driver.py): interpreter, ``sys.path`` and the files of ``pipeline`` and its C extension,
all inside the environment (for executors: the archive Spark unpacked in the executor's own
folder), nothing from the checkout or the dev venv, and torch importable only if packed.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pyspark
import pytest

from pipeline.submit import REPO_ROOT, job_script
from pipeline.synthetic.server import WorldServer
from pipeline.synthetic.world import write_url_lists
from tests.cluster.standalone import MARKER, StandaloneCluster
from tests.stages import score, score_options
from tools.pack_env import (
    DOWNLOAD_ONLY_WITHOUT,
    base_python,
    build_env,
    build_wheel,
    pack_env,
    wheel_digest,
    wheel_requirements,
)

pytestmark = pytest.mark.slow


GUARD_DIR = REPO_ROOT / "tests" / "_guard"
SPARK_HOME = Path(pyspark.__file__).parent
DRIVER_SCRIPT = Path(__file__).with_name("packed_driver.py")
EXECUTORS = 2
ROWS = 80  # the session world's corpus
SAMPLES_PER_SHARD = 20


@dataclass(frozen=True)
class PackedEnv:
    env: Path  # the built environment: the client-mode driver's interpreter
    archive: Path  # venv-pack's archive of it, shipped with --archives


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (created if missing): one session builds, others wait."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def packed_env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> PackedEnv:
    """The download-only packed environment of this checkout's wheel, built once per change."""
    wheel = build_wheel(tmp_path_factory.mktemp("wheel"))
    requirements = wheel_requirements(wheel, (), DOWNLOAD_ONLY_WITHOUT)
    python = base_python()
    key = hashlib.sha256(
        "\n".join([wheel_digest(wheel), python, sys.version, *requirements]).encode()
    ).hexdigest()[:16]
    pytest_cache = getattr(request.config, "cache", None)  # None under -p no:cacheprovider
    name = "corpusforge-packed-env"
    cache = pytest_cache.mkdir(name) if pytest_cache else tmp_path_factory.mktemp(name)
    folder = cache / key
    archive, env = folder / "corpusforge-env.tar.gz", folder / "corpusforge-env"
    with _locked(cache / "lock"):
        if not archive.exists():
            for stale in cache.iterdir():  # earlier keys: one environment is kept
                if stale.is_dir():
                    shutil.rmtree(stale, ignore_errors=True)
            build_env(env, wheel, requirements, python)
            pack_env(env, archive, compress_level=0)  # stored: fastest to pack and to unpack
    return PackedEnv(env, archive)


def _submit_outside_the_checkout(
    cluster: StandaloneCluster, packed: PackedEnv, args: list[str], where: Path, log: Path
) -> subprocess.Popen:
    """spark-submit the copied driver script with the packed environment, from folder ``where``."""
    where.mkdir(parents=True, exist_ok=True)
    script = shutil.copy(DRIVER_SCRIPT, where / DRIVER_SCRIPT.name)
    conf = {
        "spark.pyspark.python": "./environment/bin/python",
        "spark.executorEnv.PYSPARK_PYTHON": "./environment/bin/python",
        "spark.pyspark.driver.python": str(packed.env / "bin" / "python"),
        # Jobs start once both executors have registered; the barrier stage needs both at once.
        "spark.scheduler.minRegisteredResourcesRatio": "1.0",
        "spark.scheduler.barrier.maxConcurrentTasksCheck.interval": "1s",
    }
    # The cluster's settings for a job, the copied script in place of jobs/download.py.
    command = cluster.submit_command("download", [], conf)
    at = command.index(str(job_script("download")))
    command = [*command[:at], "--archives", f"{packed.archive}#environment", str(script), *args]
    env = {k: v for k, v in os.environ.items() if k not in ("PYSPARK_PYTHON", "VIRTUAL_ENV")}
    # Nothing of the checkout on the path but the socket guard (no packet leaves loopback).
    env |= {
        "PYTHONPATH": str(GUARD_DIR),
        "SPARK_HOME": str(SPARK_HOME),
        MARKER: f"{cluster.cluster_id}-driver",
    }
    with open(log, "ab") as handle:
        return subprocess.Popen(
            command, cwd=where, env=env, stdout=handle, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip


def _leaks(process: dict) -> list[str]:
    """The entries of a packed process's ``sys.path`` that reach the checkout or this dev venv.

    Allowed besides the process's own environment (the driver's is in pytest's cache folder,
    inside the checkout): the socket guard (tests/_guard: no project code) and Spark's own files,
    ``SPARK_HOME/python/lib/*.zip`` and ``SPARK_HOME/jars/*.jar`` (this test's Spark installation
    is the dev venv's pyspark).
    """
    own = Path(process["prefix"]).resolve()
    allowed = {
        GUARD_DIR.resolve(),
        (SPARK_HOME / "python" / "lib").resolve(),
        (SPARK_HOME / "jars").resolve(),
    }
    leaks = []
    for entry in filter(None, process["path"]):
        path = (Path(process["cwd"]) / entry).resolve()  # "." is the process's folder
        if path.is_relative_to(own) or path in allowed or path.parent in allowed:
            continue
        if path.is_relative_to(REPO_ROOT) or path.is_relative_to(Path(sys.prefix).resolve()):
            leaks.append(entry)
    return leaks


def assert_runs_from(process: dict, prefix: Path, torch: bool = False) -> None:
    """The reporting process runs ``prefix``'s interpreter, with pipeline and its C extension from
    there, nothing of the checkout or the dev venv on its path, and torch only if ``torch``."""
    assert Path(process["prefix"]) == prefix, process
    assert Path(process["executable"]) == prefix / "bin" / "python", process
    site = prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    assert Path(process["pipeline"]) == site / "pipeline" / "__init__.py", process
    assert Path(process["phash"]).parent == site / "pipeline" / "image", process
    assert Path(process["pyspark"]).is_relative_to(SPARK_HOME / "python" / "lib" / "pyspark.zip"), process
    assert not _leaks(process), f"sys.path reaches the checkout or the dev venv: {process}"
    assert process["torch"] == torch, f"torch importable: {process['torch']}, expected {torch}: {process}"


def run_packed(
    cluster: StandaloneCluster, packed: PackedEnv, job: str, options: list[str], tmp_path: Path, torch: bool
) -> None:
    """Run stage ``job`` through the copied driver script with the packed environment; check that
    the driver and both executors (one on each worker) ran from it."""
    report, log, where = tmp_path / "where.json", tmp_path / "driver.log", tmp_path / "submit"
    args = [str(report), str(EXECUTORS), job, *options]
    driver = _submit_outside_the_checkout(cluster, packed, args, where, log)
    assert driver.wait(timeout=900) == 0, log.read_text(errors="replace")[-5000:]
    found = json.loads(report.read_text())
    for executor in found["executors"]:  # the finished application's unpacked copies: disk only
        if Path(executor["cwd"]).is_relative_to(cluster.workdir):
            shutil.rmtree(Path(executor["cwd"]) / "environment", ignore_errors=True)
    assert_runs_from(found["driver"], packed.env, torch)
    assert Path(found["driver"]["cwd"]) == where
    executors = found["executors"]
    assert len({e["cwd"] for e in executors}) == EXECUTORS, executors
    workers = {Path(e["cwd"]).relative_to(cluster.workdir).parts[0] for e in executors}
    assert workers == {f"worker{i}" for i in range(EXECUTORS)}, f"not one executor per worker: {executors}"
    for executor in executors:
        # Spark unpacked the archive as ./environment in the executor's own folder.
        assert_runs_from(executor, Path(executor["cwd"]) / "environment", torch)


def _rows(folder: Path) -> list[dict]:
    return [r for f in sorted(folder.glob("*.parquet")) for r in pq.read_table(f).to_pylist()]


def test_download_runs_from_the_packed_environment(
    spark_cluster: StandaloneCluster, packed_env: PackedEnv, world: Path, server: WorldServer, tmp_path: Path
) -> None:
    lists = write_url_lists(world, server.base_url, out=tmp_path / "lists")
    dataset = tmp_path / "dataset"
    options = [
        "--urls", str(lists["parquet"]), "--dataset", str(dataset), "--allow-network", "127.0.0.1/32",
        "--samples-per-shard", str(SAMPLES_PER_SHARD),
    ]  # fmt: skip
    run_packed(spark_cluster, packed_env, "download", options, tmp_path, torch=False)
    rows = _rows(dataset / "raw")
    assert sorted(r["row_index"] for r in rows) == list(range(ROWS))
    failed = [r["error_message"] for r in rows if r["status"] != "success"]
    assert not failed, failed
    summary = json.loads((dataset / "raw" / "_summary.json").read_text())
    assert summary["shards"] == ROWS // SAMPLES_PER_SHARD and summary["successes"] == ROWS


# The full environment (what `make package` builds: torch's CUDA build, ~5 GB) is too big to
# build and ship on every CI run; its score run is done by hand (docs/scaling.md).
FULL_PACKAGE = os.environ.get("CORPUSFORGE_PACKAGE_DIR")


@pytest.mark.skipif(
    not FULL_PACKAGE,
    reason="by hand: `make package`, then CORPUSFORGE_PACKAGE_DIR=build/package (docs/scaling.md)",
)
def test_score_runs_from_the_full_packed_environment(
    spark_cluster: StandaloneCluster, spark, downloaded: Path, random_checkpoint: Path, tmp_path: Path
) -> None:
    folder = Path(str(FULL_PACKAGE)).resolve()
    packed = PackedEnv(folder / "corpusforge-env", folder / "corpusforge-env.tar.gz")
    reference, dataset = tmp_path / "reference", tmp_path / "dataset"
    for copy in (reference, dataset):
        shutil.copytree(downloaded / "raw", copy / "raw")
    options = ["--model", "corpusforge-tiny", "--pretrained", str(random_checkpoint), "--device", "cpu"]
    score(spark, score_options(["--dataset", str(reference), *options]))  # in process, dev venv
    run_packed(spark_cluster, packed, "score", ["--dataset", str(dataset), *options], tmp_path, torch=True)
    expected = {r["uid"]: r["clip_score"] for r in _rows(reference / "scores")}
    found = {r["uid"]: r["clip_score"] for r in _rows(dataset / "scores")}
    assert expected and found.keys() == expected.keys()
    off = {u: (found[u], expected[u]) for u in found if not math.isclose(found[u], expected[u], abs_tol=1e-6)}
    assert not off, f"scores differ from the dev venv's: {off}"
