"""dags/corpusforge.py under real Airflow: it loads, wires the expected graph, renders the exact
spark-submit command lines from the run's params, and runs the whole chain with dag.test()."""

from __future__ import annotations

import copy
import json
import math
import os
import tarfile
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.python import ShortCircuitOperator
from airflow.serialization.serialized_objects import DagSerialization

from pipeline.errors import UserInputError

from .conftest import DAGS, REPO

STAGES = ["download", "score", "dedup", "build_shards"]
JOBS = REPO / "jobs"
CONN = {"conn_type": "spark", "host": "local[2]"}


def fresh_dag():
    """A newly parsed DAG (rendering changes its tasks in place)."""
    return DagBag(dag_folder=str(DAGS)).dags["corpusforge"]


def render(conf: dict[str, Any], task_ids: list[str] | None = None) -> dict[str, Any]:
    """Render the tasks' templates for a run with ``conf`` as Airflow would; returns them by id."""
    dag = fresh_dag()
    params = copy.deepcopy(dag.params)
    params.update(conf)
    context = {"params": params.validate()}
    tasks = {}
    for task in dag.tasks:
        if task_ids is None or task.task_id in task_ids:
            task.render_template_fields(context)
            tasks[task.task_id] = task
    return tasks


def submit_command(task: SparkSubmitOperator) -> list[str]:
    """The spark-submit command line the operator's hook runs for a rendered task."""
    return task._get_hook()._build_spark_submit_command(task.application)


def test_dag_folder_loads_without_import_errors() -> None:
    bag = DagBag(dag_folder=str(DAGS))

    assert bag.import_errors == {}
    assert list(bag.dags) == ["corpusforge"]


def test_task_graph_is_the_pipeline_chain_then_optional_training_and_index(dag) -> None:
    edges = {task.task_id: sorted(task.downstream_task_ids) for task in dag.tasks}

    assert edges == {
        "download": ["score"],
        "score": ["dedup", "index_requested"],
        "dedup": ["build_shards"],
        "build_shards": ["train_requested"],
        "train_requested": ["train"],
        "train": [],
        "index_requested": ["index"],
        "index": [],
    }
    assert all(isinstance(dag.get_task(job), SparkSubmitOperator) for job in [*STAGES, "index"])
    assert isinstance(dag.get_task("train_requested"), ShortCircuitOperator)
    assert isinstance(dag.get_task("index_requested"), ShortCircuitOperator)
    assert isinstance(dag.get_task("train"), BashOperator)
    assert dag.schedule is None
    assert dag.max_active_runs == 1


def test_dag_survives_airflow_serialization(dag) -> None:
    # The scheduler and UI only ever see the serialized DAG.
    data = DagSerialization.to_dict(dag)
    DagSerialization.validate_schema(data)
    restored = DagSerialization.from_dict(data)

    assert [t.task_id for t in restored.tasks] == [t.task_id for t in dag.tasks]
    assert set(restored.params.keys()) == set(dag.params.keys())


def test_spark_submit_commands_rendered_from_params(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_TEST", json.dumps(CONN))
    tasks = render(
        {
            "dataset": "/data/corpus",
            "urls": "/data/laion_part_00000.parquet",
            "allow_network": ["127.0.0.1/32"],
            "model": "ViT-B-32",
            "pretrained": "/models/vit-b-32.pt",
            "min_clip_score": 0.28,
            "benchmarks": ["/bench/imagenet_val", "/bench/coco_hashes.parquet"],
            "spark_conn_id": "spark_test",
            "pyspark_python": "./environment/bin/python",
            "pyspark_driver_python": "/opt/corpusforge/bin/python",
            "archives": "hdfs:///envs/corpusforge.tar.gz#environment",
            "executor_memory": "8g",
            "executor_gpus": 1,
            "task_gpus": 0.5,
            "gpu_discovery_script": "/opt/spark/getGpusResources.sh",
            "spark_conf": {"spark.sql.shuffle.partitions": 64},
            "score_args": ["--batch-size", "512"],
        }
    )
    common = [
        "--conf",
        "spark.pyspark.python=./environment/bin/python",
        "--conf",
        "spark.pyspark.driver.python=/opt/corpusforge/bin/python",
        "--conf",
        "spark.archives=hdfs:///envs/corpusforge.tar.gz#environment",
        "--conf",
        "spark.executor.memory=8g",
    ]
    gpus = [
        "--conf",
        "spark.executor.resource.gpu.amount=1",
        "--conf",
        "spark.task.resource.gpu.amount=0.5",
        "--conf",
        "spark.executor.resource.gpu.discoveryScript=/opt/spark/getGpusResources.sh",
    ]
    extra = ["--conf", "spark.sql.shuffle.partitions=64"]

    def head(job: str, conf: list[str]) -> list[str]:
        name = f"corpusforge-{job.replace('_', '-')}"
        return ["spark-submit", "--master", "local[2]", *conf, "--name", name, str(JOBS / f"{job}.py")]

    assert submit_command(tasks["download"]) == [
        *head("download", common + extra),
        *["--urls", "/data/laion_part_00000.parquet", "--dataset", "/data/corpus"],
        *["--allow-network", "127.0.0.1/32"],
    ]
    assert submit_command(tasks["score"]) == [
        *head("score", common + gpus + extra),
        *["--dataset", "/data/corpus", "--model", "ViT-B-32", "--pretrained", "/models/vit-b-32.pt"],
        *["--batch-size", "512"],
    ]
    assert submit_command(tasks["dedup"]) == [
        *head("dedup", common + extra),
        *["--dataset", "/data/corpus", "--benchmark", "/bench/imagenet_val"],
        *["--benchmark", "/bench/coco_hashes.parquet"],
    ]
    assert submit_command(tasks["build_shards"]) == [
        *head("build_shards", common + extra),
        *["--dataset", "/data/corpus", "--min-clip-score", "0.28"],
    ]


def test_connection_param_picks_the_master(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_YARN", json.dumps({"conn_type": "spark", "host": "yarn"}))
    tasks = render({"dataset": "/d", "spark_conn_id": "spark_yarn"}, ["dedup"])

    command = submit_command(tasks["dedup"])

    assert command[:3] == ["spark-submit", "--master", "yarn"]
    assert command[-2:] == ["--dataset", "/d"]


def test_train_task_command_and_switch() -> None:
    conf = {
        "dataset": "/data/corpus",
        "train": True,
        "train_launcher": "torchrun --nproc_per_node 8 -m pipeline.cli train",
        "train_args": ["--steps", "5000", "--batch-size", "256"],
    }
    tasks = render(conf, ["train", "train_requested"])

    assert tasks["train"].bash_command == (
        "torchrun --nproc_per_node 8 -m pipeline.cli train "
        "--shards \"$(printf '%s::' /data/corpus/final/*.tar)\" --output /data/corpus/train "
        "--steps 5000 --batch-size 256"
    )
    assert tasks["train_requested"].python_callable(params=conf) is True
    assert tasks["train_requested"].python_callable(params={**conf, "train": False}) is False


def test_index_task_command_and_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_TEST", json.dumps(CONN))
    conf = {
        "dataset": "/data/corpus",
        "model": "ViT-B-32",
        "pretrained": "tag",
        "build_index": True,
        "index_args": ["--max-index-memory", "8G"],
        "spark_conn_id": "spark_test",
        "driver_memory": "16g",
    }
    tasks = render(conf, ["score", "index", "index_requested"])

    assert submit_command(tasks["index"]) == [
        *["spark-submit", "--master", "local[2]", "--conf", "spark.driver.memory=16g"],
        *["--name", "corpusforge-index", str(JOBS / "index.py")],
        *["--dataset", "/data/corpus", "--max-index-memory", "8G"],
    ]
    assert submit_command(tasks["score"])[-1] == "--save-embeddings"
    assert tasks["index_requested"].python_callable(params=conf) is True
    assert tasks["index_requested"].python_callable(params={**conf, "build_index": False}) is False


def test_both_score_rules_fail_the_build_task_with_the_reason() -> None:
    with pytest.raises(UserInputError, match="mutually exclusive"):
        render({"dataset": "/d", "min_clip_score": 0.28, "top_fraction": 0.3}, ["build_shards"])


def test_run_conf_of_the_wrong_type_is_refused_by_the_params() -> None:
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError, match="benchmarks"):
        render({"dataset": "/d", "benchmarks": "/one/folder"})


def test_a_missing_dataset_param_fails_rendering() -> None:
    with pytest.raises(UserInputError, match="param dataset is required"):
        render({"urls": "/u.parquet"}, ["download"])


@pytest.fixture
def local_spark(monkeypatch: pytest.MonkeyPatch, spark_home: Path, tmp_path: Path) -> str:
    """spark-submit of the main environment on PATH and a local[2] Spark connection; its id."""
    monkeypatch.setenv("SPARK_HOME", str(spark_home))
    monkeypatch.setenv("PATH", f"{spark_home / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_LOCAL", json.dumps(CONN))
    monkeypatch.chdir(tmp_path)  # spark-submit's working files (spark-warehouse) stay out of the repo
    return "spark_local"


def run_dag(conf: dict[str, Any]):
    """``dag.test()`` of a freshly parsed DAG, without retries (a failure must show at once)."""
    dag = fresh_dag()
    for task in dag.tasks:
        task.retries = 0
    run = dag.test(run_conf=conf)
    return run, {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


# Small Spark settings for a 2-core machine (as the spark fixture of the main suite).
SMALL_SPARK = {
    "spark.ui.enabled": False,
    "spark.log.level": "WARN",
    "spark.sql.shuffle.partitions": 4,
    "spark.default.parallelism": 4,
}


@pytest.mark.slow
@pytest.mark.timeout(1500)  # five spark-submit runs; minutes on a busy 2-core machine
def test_dag_test_runs_download_score_dedup_build_to_final_shards_and_the_index(
    airflow_db, local_spark: str, served_world: dict, main_python: Path, tmp_path: Path
) -> None:
    dataset = tmp_path / "dataset"
    run, states = run_dag(
        {
            "dataset": str(dataset),
            "urls": served_world["urls"],
            "allow_network": ["127.0.0.1/32"],
            "model": "corpusforge-tiny",
            "pretrained": served_world["checkpoint"],
            "top_fraction": 0.5,
            "benchmarks": [served_world["benchmark"]],
            "spark_conn_id": local_spark,
            "pyspark_python": str(main_python),
            "spark_conf": SMALL_SPARK,
            "download_args": ["--samples-per-shard", "20"],
            "score_args": ["--device", "cpu", "--batch-size", "16"],
            "build_args": ["--samples-per-shard", "6", "--min-shards", "0"],
            "build_index": True,
        }
    )

    assert str(run.state) == "success"
    assert states == {
        "download": "success",
        "score": "success",
        "dedup": "success",
        "build_shards": "success",
        "train_requested": "success",
        "train": "skipped",
        "index_requested": "success",
        "index": "success",
    }
    raw = [
        row for p in sorted((dataset / "raw").glob("[0-9]*.parquet")) for row in pq.read_table(p).to_pylist()
    ]
    assert len(raw) == served_world["images"]
    scored = sum(pq.read_metadata(p).num_rows for p in (dataset / "scores").glob("[0-9]*.parquet"))
    assert scored == sum(row["status"] == "success" for row in raw) > 0
    matches = pq.read_table(dataset / "dedup" / "matches.parquet").to_pylist()
    benchmark_copies = {m["uid"] for m in matches if m["reason"] == "benchmark_duplicate"}
    assert benchmark_copies  # the world plants copies of its benchmark images

    sizes = json.loads((dataset / "final" / "sizes.json").read_text())
    manifest = json.loads((dataset / "final" / "manifest.json").read_text())
    tars = sorted(p.name for p in (dataset / "final").glob("*.tar"))
    assert tars == sorted(sizes) and len(tars) >= 2
    keys = []
    for name in tars:
        with tarfile.open(dataset / "final" / name) as tar:
            members = tar.getnames()
        shard_keys = {m.split(".", 1)[0] for m in members}
        assert len(members) == 3 * len(shard_keys) == 3 * sizes[name]  # jpg, txt, json per sample
        keys += shard_keys
    assert len(keys) == len(set(keys)) == manifest["total_samples"] == sum(sizes.values())
    assert 0 < len(keys) <= math.ceil(0.5 * scored)
    assert not set(keys) & benchmark_copies
    # build_index: score saved the embeddings and the index holds every scored sample.
    index_stats = json.loads((dataset / "index" / "image_stats.json").read_text())
    assert index_stats["ntotal"] == scored and index_stats["recall_at_10"] == 1.0


@pytest.mark.slow
def test_a_failing_job_fails_its_task_and_stops_the_chain(
    airflow_db, local_spark: str, main_python: Path, tmp_path: Path
) -> None:
    run, states = run_dag(
        {
            "dataset": str(tmp_path / "dataset"),
            "urls": str(tmp_path / "no_such_list.parquet"),
            "spark_conn_id": local_spark,
            "pyspark_python": str(main_python),
            "spark_conf": SMALL_SPARK,
        }
    )

    assert str(run.state) == "failed"
    assert states["download"] == "failed"
    downstream = ["score", "dedup", "build_shards", "train_requested", "train", "index_requested", "index"]
    assert {states[t] for t in downstream} == {"upstream_failed"}
    assert not (tmp_path / "dataset" / "raw").exists()
