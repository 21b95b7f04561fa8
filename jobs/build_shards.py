"""spark-submit jobs/build_shards.py --dataset DIR [--min-clip-score X | --top-fraction F] [options]

Thin entry point for pipeline.build.job. See docs/build_shards.md.
"""

import sys

from pipeline.build.job import BuildStage
from pipeline.entrypoint import run_stage

if __name__ == "__main__":
    sys.exit(run_stage(BuildStage()))
