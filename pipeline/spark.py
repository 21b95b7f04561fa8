"""Creating the Spark session for a job."""

from __future__ import annotations

import os
import sys
from typing import Any


def get_spark(app_name: str) -> Any:
    """The session for ``spark-submit`` (or a local one when a job runs under plain python).

    Python workers default to this interpreter, so a job started from a virtual environment uses
    the same packages on its executors in local mode; clusters set PYSPARK_PYTHON themselves.
    """
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    # The jobs draw their own progress bar from Spark's status tracker.
    return (
        SparkSession.builder.appName(app_name).config("spark.ui.showConsoleProgress", "false").getOrCreate()
    )
