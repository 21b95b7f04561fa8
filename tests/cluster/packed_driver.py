"""spark-submit packed_driver.py REPORT EXECUTORS JOB [JOB OPTIONS]: one application that first
reports where Python and corpusforge come from, on the driver and on every executor, then runs the
stage JOB (download or score) exactly as ``jobs/JOB.py`` does.

The report (JSON at REPORT) holds, for the driver and for each of EXECUTORS executors (a barrier
stage runs one task on each at once): the interpreter, ``sys.prefix``, the working folder,
``sys.path``, and the files ``pipeline``, its C extension and ``pyspark`` were imported from.
The stage then runs in the same application, on the same executors and Python workers.

Self-contained (only pipeline and pyspark imports): the tests copy it out of the checkout
before submitting it (tests/cluster/test_packed_env.py); docs/scaling.md submits it by hand for
the score run in the full packed environment.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

STAGES = {
    "download": ("pipeline.download.job", "DownloadStage"),
    "score": ("pipeline.score.job", "ScoreStage"),
}


def where() -> dict[str, Any]:
    """Where this Python process takes its interpreter and packages from."""
    import pipeline.image._phash as phash
    import pyspark

    import pipeline

    return {
        "executable": sys.executable,
        "prefix": sys.prefix,
        "cwd": os.getcwd(),
        "path": list(sys.path),
        "pipeline": pipeline.__file__,
        "phash": phash.__file__,
        "pyspark": pyspark.__file__,
        "torch": importlib.util.find_spec("torch") is not None,
    }


def _report(_: Iterator[int]) -> Iterator[dict[str, Any]]:
    from pyspark import BarrierTaskContext

    BarrierTaskContext.get().barrier()  # every task of the stage runs at once: one per executor slot
    yield where()


def main(argv: list[str]) -> int:
    """Write the report, then run the stage; returns the stage's exit code."""
    report, executors, job, *options = argv
    from pipeline.entrypoint import run_stage
    from pipeline.spark import get_spark

    # The stage's own get_spark() then returns this same context.
    context = get_spark(f"corpusforge-packed-{job}").sparkContext
    count = int(executors)
    found = context.parallelize(range(count), count).barrier().mapPartitions(_report).collect()
    with open(report, "w") as out:
        json.dump({"driver": where(), "executors": found}, out, indent=1)
    module, name = STAGES[job]
    return run_stage(getattr(importlib.import_module(module), name)(), options)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
