"""Command lines of the corpusforge DAG's tasks, built from the DAG run's params.

Pure functions over the params mapping (``{{ params }}`` in Airflow templates): no Airflow import,
so ``pipeline/`` never needs Airflow, and every argument the DAG passes is unit-tested here. The
DAG (``dags/corpusforge.py``) registers these as template macros and only wires tasks.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.errors import UserInputError

JOBS = ("download", "score", "dedup", "build_shards")
# Off the chain: runs after score when the run's build_index param asks for it.
INDEX_JOB = "index"
SPARK_JOBS = (*JOBS, INDEX_JOB)
SAVE_EMBEDDINGS = "--save-embeddings"
JOBS_DIR_ENV = "CORPUSFORGE_JOBS_DIR"
DEFAULT_TRAIN_LAUNCHER = "corpusforge train"


def default_jobs_dir(dag_file: str | Path, environ: Mapping[str, str] = os.environ) -> str:
    """``$CORPUSFORGE_JOBS_DIR`` if set, else ``jobs/`` of the checkout holding ``dags/DAG_FILE``."""
    if environ.get(JOBS_DIR_ENV):
        return environ[JOBS_DIR_ENV]
    return str(Path(dag_file).resolve().parents[1] / "jobs")


def application(params: Mapping[str, Any], job: str) -> str:
    """The spark-submit application of ``job``: ``JOBS_DIR/JOB.py`` (a path or URI Spark reads)."""
    if job not in SPARK_JOBS:
        raise UserInputError(f"unknown job {job!r}: one of {', '.join(SPARK_JOBS)}")
    jobs_dir = _text(params, "jobs_dir", required=True)
    return f"{jobs_dir.rstrip('/')}/{job}.py"


def job_args(params: Mapping[str, Any], job: str) -> list[str]:
    """The application arguments of ``job`` (one of :data:`SPARK_JOBS`)."""
    builders = {
        "download": download_args,
        "score": score_args,
        "dedup": dedup_args,
        "build_shards": build_args,
        INDEX_JOB: index_args,
    }
    if job not in builders:
        raise UserInputError(f"unknown job {job!r}: one of {', '.join(SPARK_JOBS)}")
    return builders[job](params)


def download_args(params: Mapping[str, Any]) -> list[str]:
    """``jobs/download.py`` arguments: --urls, --dataset, --allow-network per CIDR, extra args."""
    args = ["--urls", _text(params, "urls", required=True), "--dataset", _dataset(params)]
    for cidr in _strings(params, "allow_network"):
        args += ["--allow-network", cidr]
    return args + _strings(params, "download_args")


def score_args(params: Mapping[str, Any]) -> list[str]:
    """``jobs/score.py`` arguments: --dataset, --model, --pretrained, extra args, and
    ``--save-embeddings`` when the run builds the index (which reads them) and they lack it."""
    extra = _strings(params, "score_args")
    save = [SAVE_EMBEDDINGS] if index_requested(params) and SAVE_EMBEDDINGS not in extra else []
    return [
        "--dataset",
        _dataset(params),
        "--model",
        _text(params, "model", required=True),
        "--pretrained",
        _text(params, "pretrained", required=True),
        *extra,
        *save,
    ]


def dedup_args(params: Mapping[str, Any]) -> list[str]:
    """``jobs/dedup.py`` arguments: --dataset, --benchmark per path, extra args."""
    args = ["--dataset", _dataset(params)]
    for path in _strings(params, "benchmarks"):
        args += ["--benchmark", path]
    return args + _strings(params, "dedup_args")


def build_args(params: Mapping[str, Any]) -> list[str]:
    """``jobs/build_shards.py`` arguments: --dataset, at most one score rule, extra args."""
    min_score = _number(params, "min_clip_score")
    top_fraction = _number(params, "top_fraction")
    if min_score is not None and top_fraction is not None:
        raise UserInputError(
            f"params min_clip_score ({min_score}) and top_fraction ({top_fraction}) are mutually "
            "exclusive: set the other one to null"
        )
    args = ["--dataset", _dataset(params)]
    if min_score is not None:
        args += ["--min-clip-score", _format_number(min_score)]
    if top_fraction is not None:
        args += ["--top-fraction", _format_number(top_fraction)]
    return args + _strings(params, "build_args")


def index_args(params: Mapping[str, Any]) -> list[str]:
    """``jobs/index.py`` arguments: --dataset, extra args (``index_args``, e.g. --text,
    --max-index-memory 8G)."""
    return ["--dataset", _dataset(params), *_strings(params, "index_args")]


def index_requested(params: Mapping[str, Any]) -> bool:
    """True when the run's ``build_index`` param asks for the kNN index (after score)."""
    return _flag(params, "build_index")


def spark_conf(params: Mapping[str, Any], job: str) -> dict[str, str]:
    """Spark properties for ``job``'s spark-submit (``--conf k=v``).

    The Python of the pipeline's environment (``pyspark_python``, ``pyspark_driver_python``), a
    packed environment to ship (``archives``), memory and cores, and, for the score job only, GPU
    scheduling. ``spark_conf`` entries are applied last, so they can set or override anything.
    """
    if job not in SPARK_JOBS:
        raise UserInputError(f"unknown job {job!r}: one of {', '.join(SPARK_JOBS)}")
    conf: dict[str, str] = {}
    plain = {
        "pyspark_python": "spark.pyspark.python",
        "pyspark_driver_python": "spark.pyspark.driver.python",
        "archives": "spark.archives",
        "executor_memory": "spark.executor.memory",
        "driver_memory": "spark.driver.memory",
    }
    for param, key in plain.items():
        value = _text(params, param)
        if value:
            conf[key] = value
    cores = _number(params, "executor_cores")
    if cores:
        conf["spark.executor.cores"] = _whole(cores, "executor_cores")
    if job == "score":
        conf.update(_gpu_conf(params))
    extra = params.get("spark_conf") or {}
    if not isinstance(extra, Mapping):
        raise UserInputError(f"param spark_conf must be an object of Spark properties, got {extra!r}")
    conf.update({str(k): _format_value(v) for k, v in extra.items()})
    return conf


def train_requested(params: Mapping[str, Any]) -> bool:
    """True when the run's ``train`` param asks for the training task."""
    return _flag(params, "train")


def _flag(params: Mapping[str, Any], name: str) -> bool:
    value = params.get(name, False)
    if not isinstance(value, bool):
        raise UserInputError(f"param {name} must be true or false, got {value!r}")
    return value


def train_command(params: Mapping[str, Any]) -> str:
    """The shell command of the train task: ``LAUNCHER --shards ... --output ... TRAIN_ARGS``.

    ``train_launcher`` is split and re-quoted word by word (``torchrun --nproc_per_node 8 -m
    pipeline.cli train`` works; shell syntax in it does not run). Without ``train_shards`` the
    shards are every ``DATASET/final/*.tar``, listed by the shell when the task runs (so the
    dataset must be a local or mounted path); give ``train_shards`` for object stores.
    """
    dataset = _dataset(params)
    launcher = _text(params, "train_launcher") or DEFAULT_TRAIN_LAUNCHER
    words = shlex.split(launcher)
    shards = _text(params, "train_shards")
    shards_arg = (
        shlex.quote(shards)
        if shards
        else "\"$(printf '%s::' " + shlex.quote(dataset.rstrip("/")) + '/final/*.tar)"'
    )
    output = _text(params, "train_output") or f"{dataset.rstrip('/')}/train"
    parts = [*(shlex.quote(w) for w in words), "--shards", shards_arg, "--output", shlex.quote(output)]
    parts += [shlex.quote(a) for a in _strings(params, "train_args")]
    return " ".join(parts)


def _gpu_conf(params: Mapping[str, Any]) -> dict[str, str]:
    executor_gpus = _number(params, "executor_gpus") or 0
    task_gpus = _number(params, "task_gpus") or 0
    if executor_gpus < 0 or task_gpus < 0:
        raise UserInputError(
            f"params executor_gpus and task_gpus must be >= 0, got {executor_gpus}, {task_gpus}"
        )
    if not executor_gpus:
        if task_gpus:
            raise UserInputError("param task_gpus needs executor_gpus > 0 (GPUs each executor gets)")
        return {}
    if not task_gpus:
        raise UserInputError("param executor_gpus needs task_gpus > 0 (e.g. 1, or 0.5 for two tasks a GPU)")
    if task_gpus > executor_gpus:
        raise UserInputError(f"param task_gpus ({task_gpus}) exceeds executor_gpus ({executor_gpus})")
    conf = {
        "spark.executor.resource.gpu.amount": _whole(executor_gpus, "executor_gpus"),
        "spark.task.resource.gpu.amount": _format_number(task_gpus),
    }
    script = _text(params, "gpu_discovery_script")
    if script:
        conf["spark.executor.resource.gpu.discoveryScript"] = script
    return conf


def _dataset(params: Mapping[str, Any]) -> str:
    return _text(params, "dataset", required=True)


def _text(params: Mapping[str, Any], name: str, required: bool = False) -> str:
    value = params.get(name)
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise UserInputError(f"param {name} must be a string, got {value!r}")
    value = value.strip()
    if required and not value:
        raise UserInputError(f"param {name} is required (pass it in the DAG run's conf)")
    return value


def _strings(params: Mapping[str, Any], name: str) -> list[str]:
    value = params.get(name) or []
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise UserInputError(f"param {name} must be a list of strings, got {value!r}")
    bad = [item for item in value if not isinstance(item, str) or not item.strip()]
    if bad:
        raise UserInputError(f"param {name} must hold non-empty strings only, got {bad!r}")
    return [item.strip() for item in value]


def _number(params: Mapping[str, Any], name: str) -> float | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UserInputError(f"param {name} must be a number or null, got {value!r}")
    return float(value)


def _whole(value: float, name: str) -> str:
    if not value.is_integer():
        raise UserInputError(f"param {name} must be a whole number, got {value}")
    return str(int(value))


def _format_number(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _format_number(value)
    return str(value)
