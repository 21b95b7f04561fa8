"""spark-submit jobs/build_shards.py --dataset DIR [--min-clip-score X | --top-fraction F] [options]

Thin entry point for pipeline.build.job. See docs/build_shards.md.
"""

import sys

from pipeline.build.job import check_inputs, format_summary, run
from pipeline.build.options import options_from_args
from pipeline.entrypoint import run_entrypoint

if __name__ == "__main__":
    sys.exit(run_entrypoint("corpusforge-build-shards", options_from_args, check_inputs, run, format_summary))
