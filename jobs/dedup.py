"""spark-submit jobs/dedup.py --dataset DIR --benchmark PATH [--benchmark PATH ...] [options]

Thin entry point for pipeline.dedup.job. See docs/dedup.md.
"""

import sys

from pipeline.dedup.job import DedupStage
from pipeline.entrypoint import run_stage

if __name__ == "__main__":
    sys.exit(run_stage(DedupStage()))
