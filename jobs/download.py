"""spark-submit jobs/download.py --urls PATH --dataset DIR [options]

Thin entry point for pipeline.download.job. See docs/download.md.
"""

import sys

from pipeline.download.job import check_inputs, run
from pipeline.download.options import options_from_args
from pipeline.download.summary import format_summary
from pipeline.entrypoint import run_entrypoint

if __name__ == "__main__":
    sys.exit(run_entrypoint("corpusforge-download", options_from_args, check_inputs, run, format_summary))
