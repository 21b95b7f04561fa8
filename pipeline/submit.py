"""Running the job entry points with ``spark-submit`` from Python (demo, tests, DAG helpers)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

from pipeline.errors import UserInputError

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]


def job_script(name: str) -> Path:
    """Path of ``jobs/NAME.py`` in this checkout."""
    path = REPO_ROOT / "jobs" / f"{name}.py"
    if not path.is_file():
        raise UserInputError(f"{path} not found: run from a corpusforge checkout (pip install -e .)")
    return path


def spark_submit_command(job: str, args: list[str], master: str = "local[2]") -> list[str]:
    """The spark-submit command line for ``jobs/JOB.py ARGS``, using this environment's Spark."""
    local = Path(sys.executable).with_name("spark-submit")
    submit = str(local) if local.exists() else shutil.which("spark-submit")
    if submit is None:
        raise UserInputError("spark-submit not found: install pyspark in this environment")
    conf = ["--conf", "spark.ui.enabled=false", "--conf", "spark.log.level=WARN"]
    return [submit, "--master", master, *conf, str(job_script(job)), *args]


def run_job(job: str, args: list[str], master: str = "local[2]", check: bool = True) -> int:
    """Run a job with spark-submit in a child process; its output goes to ours."""
    command = spark_submit_command(job, args, master)
    env = {**os.environ, "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable)}
    if master.startswith("local"):
        # Keep a local run on loopback instead of the host's first network interface.
        env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    log.info("running %s", " ".join(command))
    code = subprocess.run(command, env=env, check=False).returncode
    if check and code != 0:
        raise RuntimeError(f"{job} job failed with exit code {code}")
    return code
