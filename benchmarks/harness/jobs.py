"""Running the jobs as users do (``spark-submit jobs/NAME.py``), timed, on loopback only."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.net import LOOPBACK_ENV
from harness.paths import REPO
from harness.timing import busy_since, cpu_times
from pipeline.submit import spark_submit_command

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobRun:
    """One finished ``spark-submit`` run."""

    command: tuple[str, ...]
    wall_s: float
    cpu_busy: float | None  # share of all cores busy meanwhile (any process)


def job_env() -> dict[str, str]:
    """This environment, with this interpreter on the Spark workers and everything on loopback."""
    return {
        **os.environ,
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        **LOOPBACK_ENV,
    }


def run_spark_job(
    job: str,
    args: Sequence[str],
    master: str = "local[2]",
    confs: Sequence[str] = (),
    log_path: Path | None = None,
) -> JobRun:
    """``spark-submit --master MASTER [--conf C ...] jobs/JOB.py ARGS``; raise when it fails.

    Output goes to ``log_path`` when given (else to ours). ``confs`` are ``KEY=VALUE`` Spark
    settings (e.g. ``spark.task.cpus=2``).
    """
    command = spark_submit_command(job, list(args), master)
    for conf in reversed(confs):
        command[3:3] = ["--conf", conf]  # after "--master MASTER", as spark-submit options
    log.info("running %s", " ".join(command))
    started, cpu = time.perf_counter(), cpu_times()
    if log_path is None:
        code = subprocess.run(command, env=job_env(), cwd=REPO, check=False).returncode
    else:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("w") as out:
            code = subprocess.run(
                command, stdout=out, stderr=subprocess.STDOUT, env=job_env(), cwd=REPO, check=False
            ).returncode
    wall, busy = time.perf_counter() - started, busy_since(cpu)
    if code != 0:
        where = f"; see {log_path}" if log_path else ""
        raise RuntimeError(f"spark-submit jobs/{job}.py exited with {code}{where}")
    return JobRun(tuple(command), round(wall, 2), busy)


def local_spark(app: str) -> object:
    """A local[2] Spark session in this process, bound to loopback, this interpreter on its workers."""
    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["SPARK_LOCAL_IP"] = LOOPBACK_ENV["SPARK_LOCAL_IP"]
    return (
        SparkSession.builder.master("local[2]")
        .appName(app)
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.log.level", "WARN")
        .getOrCreate()
    )
