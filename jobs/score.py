"""spark-submit jobs/score.py --dataset DIR --model NAME --pretrained TAG_OR_PATH [options]

Thin entry point for pipeline.score.job. See docs/score.md.
"""

import sys

from pipeline.entrypoint import run_entrypoint
from pipeline.score.job import check_inputs, format_summary, run
from pipeline.score.options import options_from_args

if __name__ == "__main__":
    sys.exit(run_entrypoint("corpusforge-score", options_from_args, check_inputs, run, format_summary))
