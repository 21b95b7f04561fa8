"""corpusforge on Airflow: download -> score -> dedup -> build_shards (-> train), one spark-submit each;
with the build_index param, score saves embeddings and the kNN index is built after it (jobs/index.py).

Only wiring: every command line is built by pipeline.orchestration.airflow_args from the run's
params (registered as template macros, rendered as native Python objects). The Spark master,
deploy mode and queue come from the Spark connection named by the ``spark_conn_id`` param.
See docs/airflow.md for deployment, connections and params.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.python import ShortCircuitOperator
from airflow.sdk import DAG, Param

from pipeline.orchestration import airflow_args

STRINGS = {"type": "array", "items": {"type": "string"}}


class CorpusforgeSparkSubmitOperator(SparkSubmitOperator):
    """SparkSubmitOperator whose connection id is templated too (the ``spark_conn_id`` param)."""

    template_fields = (*SparkSubmitOperator.template_fields, "_conn_id")


with DAG(
    dag_id="corpusforge",
    description="URL lists to clean WebDataset shards: download, CLIP score, dedup, build shards, train",
    schedule=None,
    catchup=False,
    max_active_runs=1,  # the runs of one dataset would race on its folders
    render_template_as_native_obj=True,
    user_defined_macros={
        "application": airflow_args.application,
        "job_args": airflow_args.job_args,
        "spark_conf": airflow_args.spark_conf,
        "train_command": airflow_args.train_command,
    },
    # Every job resumes from its committed shards, so a retry only redoes unfinished work.
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["corpusforge", "spark"],
    params={
        "dataset": Param("", type="string", description="dataset root folder or fsspec URL (DIR)"),
        "urls": Param("", type="string", description="URL list file or folder (download --urls)"),
        "allow_network": Param(
            [], **STRINGS, description="non-public networks the download may reach, e.g. 127.0.0.1/32"
        ),
        "model": Param("ViT-B-32", type="string", description="open_clip model of the score job"),
        "pretrained": Param(
            "laion2b_s34b_b79k", type="string", description="open_clip tag or checkpoint path (score)"
        ),
        "min_clip_score": Param(
            None, type=["null", "number"], description="build: keep clip_score >= X (LAION ViT-B/32: 0.28)"
        ),
        "top_fraction": Param(
            None, type=["null", "number"], description="build: keep the top F by clip_score instead"
        ),
        "benchmarks": Param([], **STRINGS, description="dedup --benchmark paths (folders, tars, parquet)"),
        "download_args": Param([], **STRINGS, description="extra jobs/download.py arguments"),
        "score_args": Param([], **STRINGS, description="extra jobs/score.py arguments"),
        "dedup_args": Param([], **STRINGS, description="extra jobs/dedup.py arguments"),
        "build_args": Param([], **STRINGS, description="extra jobs/build_shards.py arguments"),
        "build_index": Param(
            False,
            type="boolean",
            description="score with --save-embeddings and build the kNN index (jobs/index.py) after score",
        ),
        "index_args": Param(
            [], **STRINGS, description="extra jobs/index.py arguments, e.g. --text, --max-index-memory 8G"
        ),
        "jobs_dir": Param(
            airflow_args.default_jobs_dir(__file__),
            type="string",
            description="folder or URI of the jobs/*.py entry points as spark-submit sees it",
        ),
        "spark_conn_id": Param(
            "spark_default", type="string", description="Airflow Spark connection (master, deploy mode)"
        ),
        "pyspark_python": Param(
            "",
            type="string",
            description="Python of the pipeline environment on executors (spark.pyspark.python)",
        ),
        "pyspark_driver_python": Param(
            "", type="string", description="Python of the driver if it differs (spark.pyspark.driver.python)"
        ),
        "archives": Param(
            "",
            type="string",
            description="packed environment to ship, e.g. hdfs:///envs/cf.tar.gz#environment",
        ),
        "executor_memory": Param("", type="string", description="spark.executor.memory, e.g. 8g"),
        "driver_memory": Param("", type="string", description="spark.driver.memory, e.g. 4g"),
        "executor_cores": Param(None, type=["null", "integer"], description="spark.executor.cores"),
        "executor_gpus": Param(
            0, type="integer", minimum=0, description="score job: spark.executor.resource.gpu.amount"
        ),
        "task_gpus": Param(
            0, type="number", minimum=0, description="score job: spark.task.resource.gpu.amount (1, 0.5, ...)"
        ),
        "gpu_discovery_script": Param(
            "", type="string", description="score job: spark.executor.resource.gpu.discoveryScript"
        ),
        "spark_conf": Param({}, type="object", description="more Spark properties for every job (win last)"),
        "train": Param(False, type="boolean", description="run the train task after build_shards"),
        "train_launcher": Param(
            airflow_args.DEFAULT_TRAIN_LAUNCHER,
            type="string",
            description="train command, e.g. 'torchrun --nproc_per_node 8 -m pipeline.cli train'",
        ),
        "train_shards": Param("", type="string", description="train --shards (default: DATASET/final/*.tar)"),
        "train_output": Param("", type="string", description="train --output (default: DATASET/train)"),
        "train_args": Param([], **STRINGS, description="extra corpusforge train arguments"),
    },
) as dag:

    def spark_job(job: str) -> CorpusforgeSparkSubmitOperator:
        return CorpusforgeSparkSubmitOperator(
            task_id=job,
            name=f"corpusforge-{job.replace('_', '-')}",
            conn_id="{{ params.spark_conn_id }}",
            application=f"{{{{ application(params, '{job}') }}}}",
            application_args=f"{{{{ job_args(params, '{job}') }}}}",
            conf=f"{{{{ spark_conf(params, '{job}') }}}}",
        )

    stages = [spark_job(job) for job in airflow_args.JOBS]
    train_requested = ShortCircuitOperator(
        task_id="train_requested", python_callable=airflow_args.train_requested
    )
    train = BashOperator(task_id="train", bash_command="{{ train_command(params) }}")
    for upstream, downstream in zip(stages, [*stages[1:], train_requested], strict=True):
        upstream >> downstream
    train_requested >> train
    # A branch off score (dedup does not wait for it); skipped unless build_index.
    index_requested = ShortCircuitOperator(
        task_id="index_requested", python_callable=airflow_args.index_requested
    )
    stages[airflow_args.JOBS.index("score")] >> index_requested >> spark_job(airflow_args.INDEX_JOB)
