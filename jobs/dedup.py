"""spark-submit jobs/dedup.py --dataset DIR --benchmark PATH [--benchmark PATH ...] [options]

Thin entry point for pipeline.dedup.job. See docs/dedup.md.
"""

import sys

from pipeline.dedup.job import check_inputs, format_summary, run
from pipeline.dedup.options import options_from_args
from pipeline.entrypoint import run_entrypoint

if __name__ == "__main__":
    sys.exit(run_entrypoint("corpusforge-dedup", options_from_args, check_inputs, run, format_summary))
