"""Creating the Spark session for a job."""

from __future__ import annotations

import os
import sys
from typing import Any


class SparkHandle:
    """What a job gets: the SparkContext at once, the Spark SQL session on first use.

    Starting Spark SQL's session state costs ~2 s of JVM work that RDD-only jobs (download)
    never need. ``sparkContext`` and ``stop`` are answered here; any other attribute
    (``createDataFrame``, ``read``, ...) creates the session over the same context and is
    looked up on it, so jobs use this exactly like a ``SparkSession``.
    """

    def __init__(self, context: Any) -> None:
        self.sparkContext = context
        self._session: Any = None

    @property
    def session(self) -> Any:
        """The ``SparkSession`` over this handle's context (created on first use)."""
        if self._session is None:
            from pyspark.sql import SparkSession

            self._session = SparkSession.builder.getOrCreate()  # reuses the running context
        return self._session

    def __getattr__(self, name: str) -> Any:  # only called for names not found on the handle
        if name.startswith("__") or name == "_session":
            raise AttributeError(name)
        return getattr(self.session, name)

    def stop(self) -> None:
        """Stop the session (if one was started) and the context."""
        if self._session is not None:
            self._session.stop()
        self.sparkContext.stop()


def get_spark(app_name: str) -> SparkHandle:
    """The Spark handle for ``spark-submit`` (or a local one when a job runs under plain python).

    Python workers default to this interpreter, so a job started from a virtual environment uses
    the same packages on its executors in local mode; clusters set PYSPARK_PYTHON themselves.
    """
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark import SparkConf, SparkContext

    # The jobs draw their own progress bar from Spark's status tracker.
    conf = SparkConf().setAppName(app_name).set("spark.ui.showConsoleProgress", "false")
    return SparkHandle(SparkContext.getOrCreate(conf))
