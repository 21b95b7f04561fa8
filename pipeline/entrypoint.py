"""The shared body of the ``jobs/*.py`` entry points: ``sys.exit(run_stage(SomeStage()))``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from pipeline.errors import UserInputError
from pipeline.executor import SparkExecutor
from pipeline.logs import setup_logging
from pipeline.spark import get_spark
from pipeline.stage import Stage

log = logging.getLogger("corpusforge")


def run_stage(stage: Stage[Any], argv: Sequence[str] | None = None) -> int:
    """Parse options, check inputs before Spark starts, run the stage, print its summary.

    Returns the process exit code: 0 done, 2 bad options or inputs (logged with the reason).
    """
    setup_logging()
    return run_parsed(stage, stage.parse(argv))


def run_parsed(stage: Stage[Any], options: Any) -> int:
    """:func:`run_stage` for options already parsed (``corpusforge import-img2dataset``)."""
    try:
        stage.check_inputs(options)
        spark = get_spark(stage.app_name)
        try:
            summary = stage.run(SparkExecutor(spark), options)
        finally:
            spark.stop()
    except UserInputError as exc:
        log.error("%s", exc)
        return 2
    print(stage.format_summary(summary))
    return 0
