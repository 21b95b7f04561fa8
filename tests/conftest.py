"""Shared fixtures: socket guard, Spark session, synthetic world and its fault server."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

GUARD_DIR = Path(__file__).parent / "_guard"
sys.path.insert(0, str(GUARD_DIR))

import socket_guard  # noqa: E402

from pipeline.download.options import DownloadOptions  # noqa: E402
from pipeline.submit import spark_submit_command  # noqa: E402
from pipeline.synthetic.server import WorldServer  # noqa: E402
from pipeline.synthetic.world import WorldSpec, generate_world, write_url_lists  # noqa: E402
from testkit.s3 import SeaweedS3  # noqa: E402
from tests.stages import download, score, score_options  # noqa: E402
from tests.stages import download_options as options_from_args  # noqa: E402

# JVM flags of the tests' Spark JVMs (see pytest_configure); the same as the test cluster's.
JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
_SCRATCH = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    # Guard this process and every Python child (Spark workers, spark-submit drivers).
    log = Path(config.rootpath) / ".pytest_cache" / f"socket_guard_{os.getpid()}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.unlink(missing_ok=True)
    os.environ["CORPUSFORGE_SOCKET_GUARD_LOG"] = str(log)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(GUARD_DIR), os.environ.get("PYTHONPATH")]))
    os.environ["PYSPARK_PYTHON"] = sys.executable
    # Tests fetch from loopback servers directly; a proxy set on the machine must not reroute
    # them (tests of proxy support set these themselves).
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        os.environ.pop(name, None)
        os.environ.pop(name.upper(), None)
    # Spark would otherwise bind to the host's first non-loopback interface.
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    # Every JVM that spark-submit starts (the in-process session's, each job's driver in local
    # mode): the client compiler only and a serial collector, as the test cluster's daemons have
    # (tests/cluster/standalone.py). Short test jobs on a shared 2-core machine then spend far
    # less CPU on JIT and GC threads (a small job's JVM used about a third less CPU time); what the
    # jobs do is unchanged. A value set by the caller is kept.
    os.environ.setdefault("SPARK_SUBMIT_OPTS", JVM_OPTIONS)
    os.environ.setdefault("CORPUSFORGE_LOG_LEVEL", "INFO")
    # Remote inputs are staged into this session's own cache, never the user's ~/.cache, and
    # Spark's scratch space (shuffle files, each job's copy of --archives and --py-files) goes
    # beside it: a killed JVM never removes its own, and both are removed when the session ends.
    scratch = Path(tempfile.mkdtemp(prefix="corpusforge-tests-"))
    config.stash[_SCRATCH] = scratch
    os.environ["CORPUSFORGE_CACHE"] = str(scratch / "cache")
    os.environ["SPARK_LOCAL_DIRS"] = str(scratch / "spark")
    (scratch / "spark").mkdir()
    socket_guard.install()


def pytest_unconfigure(config: pytest.Config) -> None:
    scratch = config.stash.get(_SCRATCH, None)
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture(autouse=True)
def _no_packet_leaves_loopback() -> Iterator[None]:
    log = Path(os.environ["CORPUSFORGE_SOCKET_GUARD_LOG"])
    before = log.read_text() if log.exists() else ""
    yield
    after = log.read_text() if log.exists() else ""
    if after != before:
        pytest.fail(f"a connect outside loopback was attempted:\n{after[len(before) :]}")


SparkSubmit = Callable[..., subprocess.CompletedProcess]


@pytest.fixture(scope="session")
def spark_submit() -> SparkSubmit:
    """``spark_submit(job, *args, timeout=300)``: run ``spark-submit jobs/JOB.py ARGS`` as users do.

    Local mode, this interpreter on the workers, output captured (spark-submit merges the
    driver's stderr into its stdout).
    """

    def run(job: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
        command = spark_submit_command(job, list(args))
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)

    return run


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    """A real local Spark session (2 cores), shared by the session's tests."""
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("corpusforge-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.log.level", "WARN")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.default.parallelism", "4")
        .getOrCreate()
    )
    yield session
    session.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """A real S3 server (SeaweedFS) on 127.0.0.1, started on first use and stopped at the end."""
    with SeaweedS3(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@dataclass(frozen=True)
class S3Bucket:
    """An empty bucket on the test S3 server; this process's AWS variables point at it."""

    name: str
    env: dict[str, str]  # the AWS variables, for spark-submit and other children
    fs: Any  # an s3fs file system without listing cache

    def url(self, *parts: str) -> str:
        """``s3://BUCKET/PARTS`` as a user writes it."""
        return "/".join([f"s3://{self.name}", *parts])


@pytest.fixture
def s3(s3_server: SeaweedS3, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Bucket]:
    """A fresh bucket on the session's S3 server, with the AWS variables set for this test;
    deleted after it."""
    env = s3_server.environment()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    bucket = S3Bucket(s3_server.new_bucket(), env, s3_server.filesystem())
    yield bucket
    s3_server.delete_bucket(bucket.name)


@pytest.fixture(params=["local", "s3"])
def storage_root(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str]]:
    """Where a test's lists and datasets live, and the variables its jobs need: a local folder,
    then a bucket on the real S3 server (tests that take it run once on each)."""
    if request.param == "local":
        return str(tmp_path / "store"), {}
    bucket: S3Bucket = request.getfixturevalue("s3")
    return bucket.url(), bucket.env


@pytest.fixture(scope="session")
def executor(spark: object) -> object:
    """The stages' Spark executor over the session's Spark."""
    from pipeline.executor import SparkExecutor

    return SparkExecutor(spark)


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic world: 80 corpus images, 8 benchmark images with 4 planted copies."""
    return generate_world(
        tmp_path_factory.mktemp("world"),
        WorldSpec(images=80, seed=1, benchmark_images=8, planted_duplicates=4, min_side=200, max_side=420),
    )


@pytest.fixture(scope="session")
def server(world: Path) -> Iterator[WorldServer]:
    """The world served on 127.0.0.1 with fault URLs; slow responses take 3 s."""
    with WorldServer(world, slow_seconds=3.0) as srv:
        yield srv


@pytest.fixture
def download_options(tmp_path: Path):
    """Build DownloadOptions from CLI-style arguments with test defaults (loopback allowed)."""

    def build(urls: str | Path, *extra: str, dataset: Path | None = None) -> DownloadOptions:
        args = [
            "--urls",
            str(urls),
            "--dataset",
            str(dataset or tmp_path / "dataset"),
            "--allow-network",
            "127.0.0.1/32",
            "--timeout",
            "2",
            "--connect-timeout",
            "2",
            "--max-retry-wait",
            "5",
            *extra,
        ]
        return options_from_args(args)

    return build


@pytest.fixture(scope="session")
def downloaded(spark, world: Path, server: WorldServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session world downloaded into a dataset (3 raw shards, label and matched kept)."""
    root = tmp_path_factory.mktemp("scored")
    lists = write_url_lists(world, server.base_url, out=root / "lists")
    options = options_from_args(
        [
            "--urls",
            str(lists["parquet"]),
            "--dataset",
            str(root / "dataset"),
            "--allow-network",
            "127.0.0.1/32",
            "--samples-per-shard",
            "30",
            "--keep-cols",
            "label,matched",
        ]
    )
    download(spark, options)
    return root / "dataset"


@pytest.fixture(scope="session")
def random_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised corpusforge-tiny checkpoint (fixed seed), for the tests that score."""
    import open_clip
    import torch

    from pipeline.score.model import register_configs
    from pipeline.train.contrastive import save_checkpoint

    register_configs()
    torch.manual_seed(random.Random(7).randint(0, 1000))
    return save_checkpoint(
        open_clip.create_model("corpusforge-tiny"), tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    )


@pytest.fixture(scope="session")
def scored(
    spark, downloaded: Path, random_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The downloaded world scored with the random tiny checkpoint, once for the session's build and
    report tests (read-only: tests copy it)."""
    dataset = tmp_path_factory.mktemp("scored_dataset") / "dataset"
    shutil.copytree(downloaded, dataset)
    score(
        spark,
        score_options(
            ["--dataset", str(dataset), "--model", "corpusforge-tiny", "--pretrained", str(random_checkpoint)]
        ),
    )
    return dataset


@pytest.fixture(scope="session")
def trained_scorer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A corpusforge-tiny CLIP trained on 1,200 clean synthetic pairs (seeded, about a minute on a
    CPU): it tells colours and shapes apart, so searches and score quality can be checked."""
    from pipeline.synthetic.scenes import random_scene, render
    from pipeline.train.contrastive import TrainOptions, save_checkpoint, train_clip

    rng = random.Random(11)  # a seed set separate from the session world's
    scenes = [random_scene(rng) for _ in range(1200)]
    images = [render(s, (rng.randint(200, 400), rng.randint(200, 400)), rng) for s in scenes]
    model = train_clip(images, [s.caption for s in scenes], TrainOptions(steps=150, batch_size=96))
    return save_checkpoint(model, tmp_path_factory.mktemp("trained_scorer") / "scorer.pt")


@pytest.fixture(scope="session")
def scored_with_embeddings(
    spark, downloaded: Path, trained_scorer: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The downloaded world scored by the trained scorer with ``--save-embeddings`` (read-only:
    tests that write copy it)."""
    dataset = tmp_path_factory.mktemp("scored_embeddings") / "dataset"
    shutil.copytree(downloaded, dataset)
    argv = ["--dataset", str(dataset), "--model", "corpusforge-tiny", "--pretrained", str(trained_scorer)]
    score(spark, score_options([*argv, "--save-embeddings"]))
    return dataset


@pytest.fixture(scope="session")
def onnx_export(random_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``random_checkpoint`` exported to ONNX (the default dynamo exporter), checked at batch sizes 1
    and 5; for the export and serve tests (read-only)."""
    from pipeline.export.job import run_export
    from pipeline.export.options import ExportOptions

    out = tmp_path_factory.mktemp("onnx_export") / "model"
    options = ExportOptions(
        checkpoint=str(random_checkpoint), output=out, model="corpusforge-tiny", verify_batches=(1, 5)
    )
    run_export(options)
    return out


@pytest.fixture(scope="session")
def zh_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained corpusforge-tiny train checkpoint whose text tower reads the bert-chinese
    tokenizer (21128 WordPiece ids, eos pooling at ``[SEP]``), saved with the tokenizer as
    ``corpusforge train --tokenizer bert-chinese`` saves it; for the export and serve tests."""
    import open_clip
    import torch

    from pipeline.score.model import register_configs
    from pipeline.score.tokenizer import text_config
    from pipeline.train.checkpoint import FORMAT
    from pipeline.train.tokenizer_choice import build_tokenizer

    register_configs()
    tokenizer = build_tokenizer("bert-chinese", 32, [])
    assert tokenizer is not None
    text = text_config(open_clip.get_model_config("corpusforge-tiny")["text_cfg"], tokenizer)
    torch.manual_seed(random.Random(8).randint(0, 1000))
    model = open_clip.create_model("corpusforge-tiny", text_cfg=text)
    path = tmp_path_factory.mktemp("zh_ckpt") / "step_00000000.pt"
    state = {"format": FORMAT, "name": "corpusforge-tiny", "step": 0, "state_dict": model.state_dict()}
    torch.save({**state, "tokenizer": tokenizer.record()}, path)
    return path


@pytest.fixture(scope="session")
def onnx_export_zh(zh_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``zh_checkpoint`` exported to ONNX (dynamo), checked at batch sizes 1 and 5 (read-only)."""
    from pipeline.export.job import run_export
    from pipeline.export.options import ExportOptions

    out = tmp_path_factory.mktemp("onnx_export_zh") / "model"
    run_export(ExportOptions(checkpoint=str(zh_checkpoint), output=out, verify_batches=(1, 5)))
    return out
