"""Set-up of the DAG tests, which run in .venv-airflow (`make test` runs them; see docs/airflow.md).

Run with ``--confcutdir=tests/dags``: tests/conftest.py imports the pipeline's heavy dependencies,
which the Airflow environment does not have. This file points Airflow at a throw-away home with
SQLite (no examples, this repo's dags/), puts the same socket guard in place, and finds the main
environment (.venv) whose Python and spark-submit run the jobs.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
GUARD_DIR = REPO / "tests" / "_guard"
MAIN_PYTHON_ENV = "CORPUSFORGE_MAIN_PYTHON"

if importlib.util.find_spec("airflow") is None:  # pragma: no cover - run from the wrong environment
    raise ImportError(
        "tests/dags need Airflow: run them with `make test` or "
        "`.venv-airflow/bin/python -m pytest tests/dags --confcutdir=tests/dags` (make venv-airflow "
        "creates it); the main suite leaves them out with --ignore=tests/dags"
    )

# Airflow reads its home and database when first imported: set them before anything imports it.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="corpusforge-airflow-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"

sys.path.insert(0, str(GUARD_DIR))
import socket_guard  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    # Guard this process and every Python child (spark-submit drivers, Spark workers).
    log = Path(config.rootpath) / ".pytest_cache" / f"socket_guard_{os.getpid()}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.unlink(missing_ok=True)
    os.environ["CORPUSFORGE_SOCKET_GUARD_LOG"] = str(log)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(GUARD_DIR), os.environ.get("PYTHONPATH")]))
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    # The jobs' JVMs (spark-submit in local mode) as in the main suite (tests/conftest.py): the
    # client compiler and a serial collector, less CPU for short jobs on a shared machine.
    os.environ.setdefault("SPARK_SUBMIT_OPTS", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
    os.environ.setdefault("CORPUSFORGE_LOG_LEVEL", "INFO")
    socket_guard.install()


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture(autouse=True)
def _no_packet_leaves_loopback() -> Iterator[None]:
    log = Path(os.environ["CORPUSFORGE_SOCKET_GUARD_LOG"])
    before = log.read_text() if log.exists() else ""
    yield
    after = log.read_text() if log.exists() else ""
    if after != before:
        pytest.fail(f"a connect outside loopback was attempted:\n{after[len(before) :]}")


@pytest.fixture(scope="session")
def dag():
    """The corpusforge DAG as Airflow's DagBag loads it from dags/ (no import errors allowed)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}, bag.import_errors
    return bag.dags["corpusforge"]


@pytest.fixture(scope="session")
def main_python() -> Path:
    """The pipeline environment's Python (.venv, or $CORPUSFORGE_MAIN_PYTHON); never skipped."""
    python = Path(os.environ.get(MAIN_PYTHON_ENV) or REPO / ".venv" / "bin" / "python")
    if not python.exists():
        pytest.fail(f"{python} not found: the DAG tests run the jobs with the main venv (make venv)")
    return python


@pytest.fixture(scope="session")
def spark_home(main_python: Path) -> Path:
    """SPARK_HOME of the main environment's pyspark (its bin/ holds spark-submit)."""
    code = "import os, pyspark; print(os.path.dirname(pyspark.__file__))"
    return Path(subprocess.check_output([str(main_python), "-c", code], text=True).strip())


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """Airflow's metadata database (SQLite in the temporary home), migrated once."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)


@pytest.fixture(scope="session")
def served_world(main_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A synthetic world served on 127.0.0.1 and a random corpusforge-tiny checkpoint.

    Made by tests/dags/serve_world.py in the main environment (it needs Pillow and torch); yields
    its paths and URL, and stops the server when the session ends.
    """
    out = tmp_path_factory.mktemp("served")
    script = Path(__file__).with_name("serve_world.py")
    proc = subprocess.Popen(
        [str(main_python), str(script), str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line:
            pytest.fail(f"serve_world.py exited with {proc.wait()} before serving")
        yield json.loads(line)
    finally:
        if proc.stdin:
            proc.stdin.close()
        proc.wait(timeout=60)
