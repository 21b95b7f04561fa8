"""The shared body of the ``jobs/*.py`` entry points."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from pipeline.errors import UserInputError
from pipeline.logs import setup_logging
from pipeline.spark import get_spark

Options = TypeVar("Options")


def run_entrypoint(
    app_name: str,
    parse: Callable[[], Options],
    check_inputs: Callable[[Options], None],
    run: Callable[[Any, Options], dict[str, Any]],
    format_summary: Callable[[dict[str, Any]], str],
) -> int:
    """Parse options, check inputs before Spark starts, run the job, print its summary.

    Returns the process exit code: 0 done, 2 bad options or inputs (logged with the reason).
    """
    setup_logging()
    options = parse()
    try:
        check_inputs(options)
        spark = get_spark(app_name)
        try:
            summary = run(spark, options)
        finally:
            spark.stop()
    except UserInputError as exc:
        logging.getLogger("corpusforge").error("%s", exc)
        return 2
    print(format_summary(summary))
    return 0
