"""The ``spark_cluster`` fixture: a real Spark standalone cluster on loopback (master + 2 workers).

Reusable by every job's tests: ``spark_cluster.submit("score", [...], log)`` runs
``spark-submit --master spark://127.0.0.1:PORT jobs/score.py ...``; ``kill_worker(i)`` and
``kill_driver()`` simulate a lost machine and a lost driver. The cluster is started once per
session, on first use, and each test gets it back with all its workers.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster.standalone import StandaloneCluster


@pytest.fixture(scope="session")
def _standalone_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandaloneCluster]:
    cluster = StandaloneCluster(tmp_path_factory.mktemp("spark-cluster"), workers=2)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture
def spark_cluster(_standalone_cluster: StandaloneCluster) -> Iterator[StandaloneCluster]:
    """The session's standalone cluster with every worker alive; drivers left running are killed after."""
    _standalone_cluster.ensure_workers()
    yield _standalone_cluster
    _standalone_cluster.kill_driver()
