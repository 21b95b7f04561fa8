"""score, dedup and build_shards on a real standalone cluster: a worker or the driver dies mid-job.

The module shares one small dataset: the session world (80 images, plus the bad rows of
``write_url_lists``: failed rows and one URL repeated under another caption) downloaded in local
mode into 6 raw shards, and the outputs of undisturbed runs of each job on it (local mode, in
process), the references. Each test copies the inputs its job reads, runs the job on the cluster
with a fault, and compares what the job committed with the reference.

- Worker: killed (SIGKILL, with its executor and Python workers) while a task of the job hangs
  on it (see faults.py); the job must finish through Spark's retry of that very task.
- Driver: SIGKILLed after the first committed shard (dedup: once the benchmark is hashed); a
  rerun must finish with the reference's outputs.
"""

from __future__ import annotations

import json
import math
import shutil
import tarfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.synthetic.server import WorldServer
from pipeline.synthetic.world import write_url_lists
from tests.cluster.driver_ui import DriverUI
from tests.cluster.faults import (
    Target,
    assert_loopback_only,
    assert_task_lost_then_retried,
    event_log_conf,
    kill_worker_mid_task,
    reach,
    target_worker,
    task_running_on,
)
from tests.cluster.standalone import StandaloneCluster
from tests.stages import build as build
from tests.stages import build_options as build_options
from tests.stages import dedup as dedup
from tests.stages import dedup_options as dedup_options
from tests.stages import download as download
from tests.stages import download_options as download_options
from tests.stages import score as score
from tests.stages import score_options as score_options

pytestmark = pytest.mark.slow


ROWS_PER_RAW_SHARD = 15  # 86 rows: 6 raw shards
SCORE_TOLERANCE = 1e-6
# As the in-process `spark` fixture of the references: tiny data needs few shuffle partitions.
CONF = {"spark.sql.shuffle.partitions": "4", "spark.default.parallelism": "4"}


def score_args(dataset: Path, checkpoint: Path) -> list[str]:
    # Batches of 2: a task makes several forward passes, so it is in flight for a while.
    return [
        "--dataset", str(dataset), "--model", "corpusforge-tiny", "--pretrained", str(checkpoint),
        "--batch-size", "2", "--device", "cpu",
    ]  # fmt: skip


def dedup_args(dataset: Path, world: Path) -> list[str]:
    # 8 bits finds the world's planted copies and nothing else (see tests/dedup/test_job.py).
    return ["--dataset", str(dataset), "--benchmark", str(world / "benchmark"), "--max-distance", "8"]


def build_args(dataset: Path) -> list[str]:
    return [
        "--dataset", str(dataset), "--top-fraction", "0.8", "--samples-per-shard", "2", "--seed", "5",
        "--min-shards", "0",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def reference(spark, world: Path, server: WorldServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The world downloaded in local mode: raw/ only; the fixtures below add each job's outputs."""
    root = tmp_path_factory.mktemp("cluster-reference")
    lists = write_url_lists(world, server.base_url, bad_rows=True, out=root / "lists")
    args = ["--urls", str(lists["parquet"]), "--dataset", str(root / "dataset")]
    args += ["--allow-network", "127.0.0.1/32", "--samples-per-shard", str(ROWS_PER_RAW_SHARD)]
    download(spark, download_options(args))
    return root / "dataset"


@pytest.fixture(scope="module")
def scored(spark, reference: Path, random_checkpoint: Path) -> Path:
    """The reference with scores/ of an undisturbed run."""
    score(spark, score_options(score_args(reference, random_checkpoint)))
    return reference


@pytest.fixture(scope="module")
def deduped(spark, reference: Path, world: Path) -> Path:
    """The reference with dedup/ of an undisturbed run (benchmark and exact duplicates found)."""
    summary = dedup(spark, dedup_options(dedup_args(reference, world)))
    assert summary["by_reason"]["benchmark_duplicate"] > 0 and summary["by_reason"]["exact_duplicate"] > 0
    return reference


@pytest.fixture(scope="module")
def built(spark, scored: Path, deduped: Path) -> Path:
    """The reference with final/ of an undisturbed build (several shards, some samples dropped)."""
    summary = build(spark, build_options(build_args(scored)))
    assert summary["shards"] >= 6 and summary["dropped"], summary
    return scored


def _copy(reference: Path, tmp_path: Path, *parts: str) -> Path:
    dataset = tmp_path / "dataset"
    for part in parts:
        shutil.copytree(reference / part, dataset / part)
    return dataset


def _markers(folder: Path) -> int:
    return len(list(folder.glob("*_stats.json")))


def _strike_when(folder: Path, done: Path) -> Callable[[], bool]:
    """Moment: a first shard committed in ``folder``, the job not finished (``done`` absent)."""
    return lambda: _markers(folder) >= 1 and not done.exists()


def _temporaries(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.tmp.*"))


def _kill_driver_and_rerun(
    cluster: StandaloneCluster,
    job: str,
    args: list[str],
    moment: Callable[[], bool],
    log: Path,
    count: Callable[[], int] = lambda: 0,
) -> int:
    """Start ``job``, SIGKILL its driver at ``moment``, rerun it to the end; ``count()`` at the kill."""
    driver = cluster.submit(job, args, log, conf=CONF)
    reach(moment, driver, log)
    assert_loopback_only(cluster)
    assert cluster.kill_driver(), "no driver process was found to kill"
    driver.wait()
    at_kill = count()
    rerun = cluster.submit(job, args, log, conf=CONF)
    assert rerun.wait(timeout=400) == 0, log.read_text(errors="replace")[-5000:]
    return at_kill


def _resume_after_driver_kill(
    cluster: StandaloneCluster, job: str, args: list[str], out: Path, done: Path, log: Path
) -> None:
    """Kill ``job``'s driver once a shard is committed in ``out`` (``done`` absent), rerun it: the
    rerun resumes every shard committed before the kill and leaves no temporary file."""
    at_kill = _kill_driver_and_rerun(cluster, job, args, _strike_when(out, done), log, lambda: _markers(out))
    summary = json.loads((out / "_summary.json").read_text())
    assert summary["shards_resumed"] >= at_kill >= 1
    assert not _temporaries(out), "temporary files were left behind"


def _kill_worker(
    cluster: StandaloneCluster,
    job: str,
    args: list[str],
    moment: Callable[[DriverUI, Target], Callable[[], bool]],
    log: Path,
    before_kill: Callable[[], bool] | None = None,
) -> None:
    """Run ``job``, kill worker1 with a task in flight at ``moment``; the job must still succeed."""
    ui, events = DriverUI(), log.parent / "events"
    # No locality wait: a free executor gets the next pending task at once, frozen or not.
    conf = {**CONF, **ui.conf, **event_log_conf(events), "spark.locality.wait": "0s"}
    driver = cluster.submit(job, args, log, conf=conf)
    target = target_worker(cluster, ui, driver, log)
    assert_loopback_only(cluster)
    reach(moment(ui, target), driver, log)
    lost = kill_worker_mid_task(cluster, ui, driver, target, before_kill=before_kill)
    assert driver.wait(timeout=400) == 0, log.read_text(errors="replace")[-5000:]
    assert_task_lost_then_retried(events, lost)


# --- score -------------------------------------------------------------------------------------


def _successes(dataset: Path) -> set[str]:
    rows = [r for f in sorted((dataset / "raw").glob("*.parquet")) for r in pq.read_table(f).to_pylist()]
    return {r["uid"] for r in rows if r["status"] == "success"}


def assert_scores_match(dataset: Path, reference: Path) -> None:
    """Every successful raw sample scored exactly once, with the reference's score (within 1e-6)."""
    found = [r for f in sorted((dataset / "scores").glob("*.parquet")) for r in pq.read_table(f).to_pylist()]
    repeated = [uid for uid, n in Counter(r["uid"] for r in found).items() if n > 1]
    assert not repeated, f"scored more than once: {repeated}"
    scores = {r["uid"]: r["clip_score"] for r in found}
    assert set(scores) == _successes(dataset)
    expected = {
        r["uid"]: r["clip_score"]
        for f in sorted((reference / "scores").glob("*.parquet"))
        for r in pq.read_table(f).to_pylist()
    }
    assert scores.keys() == expected.keys()
    off = {
        u: (scores[u], expected[u])
        for u in scores
        if not math.isclose(scores[u], expected[u], abs_tol=SCORE_TOLERANCE)
    }
    assert not off, f"scores differ from the reference run: {off}"
    summary = json.loads((dataset / "scores" / "_summary.json").read_text())
    assert summary["scored"] == len(expected) and summary["shards"] == _markers(reference / "raw")


def test_score_survives_a_worker_killed_mid_task(
    spark_cluster: StandaloneCluster, scored: Path, random_checkpoint: Path, tmp_path: Path
) -> None:
    dataset = _copy(scored, tmp_path, "raw")
    scores = dataset / "scores"
    # A task runs on worker1 (its first one loads the model: seconds); it hangs there while
    # worker0 commits a shard, then worker1 is killed.
    args = score_args(dataset, random_checkpoint)
    first_shard = _strike_when(scores, scores / "_summary.json")
    _kill_worker(spark_cluster, "score", args, task_running_on, tmp_path / "driver.log", first_shard)
    assert_scores_match(dataset, scored)


def test_score_resumes_after_the_driver_is_killed_mid_job(
    spark_cluster: StandaloneCluster, scored: Path, random_checkpoint: Path, tmp_path: Path
) -> None:
    dataset = _copy(scored, tmp_path, "raw")
    scores = dataset / "scores"
    args = score_args(dataset, random_checkpoint)
    _resume_after_driver_kill(
        spark_cluster, "score", args, scores, scores / "_summary.json", tmp_path / "driver.log"
    )
    assert_scores_match(dataset, scored)


# --- dedup -------------------------------------------------------------------------------------


def assert_matches_match(dataset: Path, reference: Path) -> None:
    """dedup/matches.parquet equal, row for row, to the reference run's."""
    found = pq.read_table(dataset / "dedup" / "matches.parquet")
    expected = pq.read_table(reference / "dedup" / "matches.parquet")
    assert found.to_pylist() == expected.to_pylist()
    assert found.schema == expected.schema
    summary = json.loads((dataset / "dedup" / "_summary.json").read_text())
    assert (
        summary["by_reason"] == json.loads((reference / "dedup" / "_summary.json").read_text())["by_reason"]
    )


def test_dedup_survives_a_worker_killed_mid_task(
    spark_cluster: StandaloneCluster, deduped: Path, world: Path, tmp_path: Path
) -> None:
    dataset = _copy(deduped, tmp_path, "raw")
    folder = dataset / "dedup"
    # Mid-job: the benchmark is hashed; matching, the corpus duplicates and the guard are ahead.
    hashed = lambda: (folder / "benchmark_hashes.parquet").exists()  # noqa: E731
    args = dedup_args(dataset, world)
    _kill_worker(spark_cluster, "dedup", args, lambda ui, target: hashed, tmp_path / "driver.log")
    assert_matches_match(dataset, deduped)
    assert not _temporaries(folder)


def test_dedup_reruns_after_the_driver_is_killed_mid_job(
    spark_cluster: StandaloneCluster, deduped: Path, world: Path, tmp_path: Path
) -> None:
    dataset = _copy(deduped, tmp_path, "raw")
    folder = dataset / "dedup"
    moment = lambda: (folder / "benchmark_hashes.parquet").exists()  # noqa: E731
    _kill_driver_and_rerun(
        spark_cluster, "dedup", dedup_args(dataset, world), moment, tmp_path / "driver.log"
    )
    assert_matches_match(dataset, deduped)
    assert not _temporaries(folder), "temporary files were left behind"


# --- build_shards ------------------------------------------------------------------------------


def _members(tar: Path) -> list[str]:
    with tarfile.open(tar) as archive:
        return archive.getnames()


def assert_build_matches(dataset: Path, reference: Path) -> None:
    """final/: the same shards (members, bytes), sizes.json, manifest.json and selection records."""
    final, expected = dataset / "final", reference / "final"
    for name in ("sizes.json", "manifest.json"):
        assert json.loads((final / name).read_text()) == json.loads((expected / name).read_text()), name
    manifest = json.loads((expected / "manifest.json").read_text())
    assert sorted(p.name for p in final.glob("*.tar")) == [s["name"] for s in manifest["shards"]]
    for shard in manifest["shards"]:
        assert _members(final / shard["name"]) == _members(expected / shard["name"]), shard["name"]
        assert (final / shard["name"]).read_bytes() == (expected / shard["name"]).read_bytes(), shard["name"]
    parts = sorted(p.name for p in (expected / "_selection").glob("*.parquet"))
    assert sorted(p.name for p in (final / "_selection").glob("*.parquet")) == parts
    for name in parts:
        assert pq.read_table(final / "_selection" / name).equals(
            pq.read_table(expected / "_selection" / name)
        )


def test_build_shards_survives_a_worker_killed_mid_task(
    spark_cluster: StandaloneCluster, built: Path, tmp_path: Path
) -> None:
    dataset = _copy(built, tmp_path, "raw", "scores", "dedup")
    final = dataset / "final"
    first_shard = _strike_when(final, final / "manifest.json")
    args = build_args(dataset)
    _kill_worker(spark_cluster, "build_shards", args, lambda ui, target: first_shard, tmp_path / "driver.log")
    assert_build_matches(dataset, built)


def test_build_shards_resumes_after_the_driver_is_killed_mid_job(
    spark_cluster: StandaloneCluster, built: Path, tmp_path: Path
) -> None:
    dataset = _copy(built, tmp_path, "raw", "scores", "dedup")
    final = dataset / "final"
    args = build_args(dataset)
    _resume_after_driver_kill(
        spark_cluster, "build_shards", args, final, final / "manifest.json", tmp_path / "driver.log"
    )
    assert_build_matches(dataset, built)
