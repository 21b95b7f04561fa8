"""spark-submit jobs/download.py --urls PATH --dataset DIR [options]

Thin entry point: parse options, start Spark, run pipeline.download.job. See docs/download.md.
"""

import logging
import sys

from pipeline.download.job import check_inputs, run
from pipeline.download.options import options_from_args
from pipeline.download.summary import format_summary
from pipeline.errors import UserInputError
from pipeline.logs import setup_logging
from pipeline.spark import get_spark


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    options = options_from_args(argv)
    try:
        check_inputs(options)
        spark = get_spark("corpusforge-download")
        try:
            summary = run(spark, options)
        finally:
            spark.stop()
    except UserInputError as exc:
        logging.getLogger("corpusforge").error("%s", exc)
        return 2
    print(format_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
