"""spark-submit jobs/index.py --dataset DIR [--text] [--index-type auto|flat|hnsw|ivfpq] [options]

Thin entry point for pipeline.index.job. See docs/explore.md.
"""

import sys

from pipeline.entrypoint import run_stage
from pipeline.index.job import IndexStage

if __name__ == "__main__":
    sys.exit(run_stage(IndexStage()))
