"""spark-submit jobs/score.py --dataset DIR --model NAME --pretrained TAG_OR_PATH [options]

Thin entry point: parse options, check the model, start Spark, run pipeline.score.job.
See docs/score.md.
"""

import logging
import sys

from pipeline.errors import UserInputError
from pipeline.logs import setup_logging
from pipeline.score.job import check_inputs, format_summary, run
from pipeline.score.options import options_from_args
from pipeline.spark import get_spark


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    options = options_from_args(argv)
    try:
        check_inputs(options)
        spark = get_spark("corpusforge-score")
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
