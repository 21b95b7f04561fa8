"""The DAG's command lines, from params to arguments (the DAG itself is tested in tests/dags)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pipeline.errors import UserInputError
from pipeline.index.job import IndexStage
from pipeline.orchestration import airflow_args as aa
from pipeline.train.options import options_from_args as train_options
from tests.stages import build_options as build_options
from tests.stages import dedup_options as dedup_options
from tests.stages import download_options as download_options
from tests.stages import score_options as score_options

BASE = {"dataset": "/data/corpus", "urls": "/lists/part0.parquet", "model": "ViT-B-32", "pretrained": "tag"}


def test_each_job_gets_its_required_flags_and_extra_args() -> None:
    params = {
        **BASE,
        "allow_network": ["127.0.0.1/32", "10.0.0.0/8"],
        "benchmarks": ["/b/one", "/b/two.parquet"],
        "download_args": ["--samples-per-shard", "500"],
        "dedup_args": ["--max-distance", "6"],
    }

    assert aa.job_args(params, "download") == [
        *["--urls", "/lists/part0.parquet", "--dataset", "/data/corpus"],
        *["--allow-network", "127.0.0.1/32", "--allow-network", "10.0.0.0/8", "--samples-per-shard", "500"],
    ]
    assert aa.job_args(params, "score") == [
        *["--dataset", "/data/corpus", "--model", "ViT-B-32", "--pretrained", "tag"],
    ]
    assert aa.job_args(params, "dedup") == [
        *["--dataset", "/data/corpus", "--benchmark", "/b/one", "--benchmark", "/b/two.parquet"],
        *["--max-distance", "6"],
    ]
    assert aa.job_args(params, "build_shards") == ["--dataset", "/data/corpus"]


def test_the_jobs_own_parsers_accept_the_arguments() -> None:
    # The argument lists must mean what the params say to the real entry points.
    params = {**BASE, "benchmarks": ["/b"], "top_fraction": 0.3, "allow_network": ["127.0.0.1/32"]}

    download = download_options(aa.download_args(params))
    assert (download.dataset, download.ingest.urls) == ("/data/corpus", "/lists/part0.parquet")
    assert download.fetch.allow_networks == ("127.0.0.1/32",)
    score = score_options(aa.score_args(params))
    assert (score.model, score.pretrained) == ("ViT-B-32", "tag")
    assert dedup_options(aa.dedup_args(params)).benchmarks == ("/b",)
    built = build_options(aa.build_args(params))
    assert (built.top_fraction, built.min_clip_score) == (0.3, None)


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"min_clip_score": 0.28}, ["--min-clip-score", "0.28"]),
        ({"min_clip_score": 0}, ["--min-clip-score", "0"]),
        ({"top_fraction": 0.3}, ["--top-fraction", "0.3"]),
        ({"top_fraction": 1}, ["--top-fraction", "1"]),
        ({"min_clip_score": None, "top_fraction": None}, []),
    ],
)
def test_score_rule_flags(rule: dict, expected: list[str]) -> None:
    assert aa.build_args({**BASE, **rule}) == ["--dataset", "/data/corpus", *expected]


def test_both_score_rules_are_refused_with_both_values() -> None:
    with pytest.raises(UserInputError, match=r"min_clip_score \(0.28\) and top_fraction \(0.3\)"):
        aa.build_args({**BASE, "min_clip_score": 0.28, "top_fraction": 0.3})


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"urls": "/u"}, "param dataset is required"),
        ({"dataset": "  ", "urls": "/u"}, "param dataset is required"),
        ({"dataset": "/d"}, "param urls is required"),
        ({"dataset": "/d", "urls": "/u", "allow_network": "127.0.0.1/32"}, "allow_network must be a list"),
        ({"dataset": "/d", "urls": "/u", "download_args": ["--x", ""]}, "non-empty strings only"),
        ({"dataset": "/d", "urls": 3}, "param urls must be a string"),
    ],
)
def test_bad_download_params_name_the_param(params: dict, message: str) -> None:
    with pytest.raises(UserInputError, match=message):
        aa.download_args(params)


def test_score_needs_model_and_weights() -> None:
    with pytest.raises(UserInputError, match="param pretrained is required"):
        aa.score_args({"dataset": "/d", "model": "ViT-B-32"})


def test_threshold_must_be_a_number() -> None:
    with pytest.raises(UserInputError, match="min_clip_score must be a number"):
        aa.build_args({"dataset": "/d", "min_clip_score": "0.28"})
    with pytest.raises(UserInputError, match="min_clip_score must be a number"):
        aa.build_args({"dataset": "/d", "min_clip_score": True})


def test_application_is_the_entry_point_under_jobs_dir() -> None:
    assert aa.application({"jobs_dir": "/opt/cf/jobs/"}, "build_shards") == "/opt/cf/jobs/build_shards.py"
    assert aa.application({"jobs_dir": "local:///app/jobs"}, "score") == "local:///app/jobs/score.py"
    with pytest.raises(UserInputError, match="unknown job 'train'"):
        aa.application({"jobs_dir": "/j"}, "train")
    with pytest.raises(UserInputError, match="param jobs_dir is required"):
        aa.application({}, "score")


def test_default_jobs_dir_is_the_checkout_or_the_environment(tmp_path: Path) -> None:
    dag_file = tmp_path / "repo" / "dags" / "corpusforge.py"

    assert aa.default_jobs_dir(dag_file, {}) == str((tmp_path / "repo" / "jobs").resolve())
    assert aa.default_jobs_dir(dag_file, {aa.JOBS_DIR_ENV: "/opt/cf/jobs"}) == "/opt/cf/jobs"
    # This checkout's DAG points at this checkout's entry points.
    repo = Path(__file__).resolve().parents[2]
    assert Path(aa.default_jobs_dir(repo / "dags" / "corpusforge.py", {}), "score.py").is_file()


def test_spark_conf_maps_params_to_properties() -> None:
    params = {
        "pyspark_python": "./environment/bin/python",
        "pyspark_driver_python": "",
        "archives": "hdfs:///envs/cf.tar.gz#environment",
        "executor_memory": "8g",
        "driver_memory": "4g",
        "executor_cores": 4,
        "executor_gpus": 2,
        "task_gpus": 1,
        "gpu_discovery_script": "/opt/gpus.sh",
        "spark_conf": {"spark.executor.memory": "16g", "spark.ui.enabled": False, "spark.x": 0.25},
    }
    base = {
        "spark.pyspark.python": "./environment/bin/python",
        "spark.archives": "hdfs:///envs/cf.tar.gz#environment",
        "spark.executor.memory": "16g",  # spark_conf wins
        "spark.driver.memory": "4g",
        "spark.executor.cores": "4",
        "spark.ui.enabled": "false",
        "spark.x": "0.25",
    }

    assert aa.spark_conf(params, "download") == base
    assert aa.spark_conf(params, "score") == {
        **base,
        "spark.executor.resource.gpu.amount": "2",
        "spark.task.resource.gpu.amount": "1",
        "spark.executor.resource.gpu.discoveryScript": "/opt/gpus.sh",
    }
    assert aa.spark_conf({}, "dedup") == {}


@pytest.mark.parametrize(
    ("gpus", "message"),
    [
        ({"executor_gpus": 1}, "executor_gpus needs task_gpus > 0"),
        ({"task_gpus": 1}, "task_gpus needs executor_gpus > 0"),
        ({"executor_gpus": 1, "task_gpus": 2}, r"task_gpus \(2.0\) exceeds executor_gpus"),
        ({"executor_gpus": 1.5, "task_gpus": 1}, "executor_gpus must be a whole number"),
        ({"executor_gpus": -1, "task_gpus": 1}, "must be >= 0"),
    ],
)
def test_inconsistent_gpu_params_are_refused(gpus: dict, message: str) -> None:
    with pytest.raises(UserInputError, match=message):
        aa.spark_conf(gpus, "score")


def test_gpu_params_only_touch_the_score_job() -> None:
    assert aa.spark_conf({"executor_gpus": 1, "task_gpus": 0.5}, "build_shards") == {}
    assert aa.spark_conf({"executor_gpus": 1, "task_gpus": 0.5}, "score") == {
        "spark.executor.resource.gpu.amount": "1",
        "spark.task.resource.gpu.amount": "0.5",
    }


def test_spark_conf_must_be_an_object() -> None:
    with pytest.raises(UserInputError, match="spark_conf must be an object"):
        aa.spark_conf({"spark_conf": ["spark.x=1"]}, "score")


def test_train_switch() -> None:
    assert aa.train_requested({"train": True}) is True
    assert aa.train_requested({}) is False
    with pytest.raises(UserInputError, match="train must be true or false"):
        aa.train_requested({"train": "yes"})


def test_train_command_lists_the_final_shards_when_it_runs(tmp_path: Path) -> None:
    dataset = tmp_path / "my corpus"
    (dataset / "final").mkdir(parents=True)
    for name in ("000000.tar", "000001.tar"):
        (dataset / "final" / name).write_bytes(b"")
    command = aa.train_command(
        {
            "dataset": str(dataset),
            "train_launcher": r"printf '%s\n'",
            "train_args": ["--steps", "10", "--eval-world", "it's here"],
        }
    )

    # The shell (bash, as Airflow's BashOperator) expands the shard list and keeps quoting intact.
    out = subprocess.run(["bash", "-c", command], capture_output=True, text=True, check=True).stdout
    final = dataset / "final"
    shards = f"{final}/000000.tar::{final}/000001.tar::"
    assert out.splitlines() == [
        "--shards",
        shards,
        "--output",
        f"{dataset}/train",
        "--steps",
        "10",
        "--eval-world",
        "it's here",
    ]
    # ...and corpusforge train accepts what it produces (empty parts between '::' are ignored).
    assert train_options(out.splitlines()).shards == shards


def test_train_command_with_explicit_shards_and_launcher() -> None:
    command = aa.train_command(
        {
            "dataset": "s3://bucket/corpus",
            "train_launcher": "torchrun --nproc_per_node 8 -m pipeline.cli train",
            "train_shards": "s3://bucket/corpus/final/{000000..000099}.tar",
            "train_output": "s3://bucket/runs/1",
        }
    )

    assert command == (
        "torchrun --nproc_per_node 8 -m pipeline.cli train "
        "--shards 's3://bucket/corpus/final/{000000..000099}.tar' --output s3://bucket/runs/1"
    )


def test_shell_syntax_in_the_launcher_does_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    command = aa.train_command({"dataset": str(tmp_path), "train_launcher": f"echo; touch {marker}"})

    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, check=False)

    assert result.returncode == 127 and "echo;: command not found" in result.stderr
    assert not marker.exists()
    blank = aa.train_command({"dataset": "/d", "train_launcher": "   "})
    assert blank.startswith("corpusforge train --shards ")


def test_index_switch_saves_embeddings_and_builds_the_index_with_its_args() -> None:
    assert aa.index_requested({}) is False
    with pytest.raises(UserInputError, match="build_index must be true or false"):
        aa.index_requested({"build_index": "yes"})
    assert "--save-embeddings" not in aa.score_args(BASE)
    params = {**BASE, "build_index": True, "index_args": ["--text", "--max-index-memory", "8G"]}
    assert aa.index_requested(params) is True
    assert aa.score_args(params)[-1] == "--save-embeddings"
    given = {**params, "score_args": ["--save-embeddings", "--batch-size", "64"]}
    assert aa.score_args(given).count("--save-embeddings") == 1
    assert aa.job_args(params, "index") == ["--dataset", "/data/corpus", "--text", "--max-index-memory", "8G"]
    assert aa.application({"jobs_dir": "/j"}, "index") == "/j/index.py"
    assert "spark.executor.resource.gpu.amount" not in aa.spark_conf(
        {**params, "executor_gpus": 1, "task_gpus": 1}, "index"
    )
    # What the real entry points make of them.
    assert score_options(aa.score_args(params)).save_embeddings is True
    index = IndexStage().parse(aa.index_args(params))
    assert (index.dataset, index.text, index.max_index_memory) == ("/data/corpus", True, "8G")
