"""spark-submit jobs/download.py --urls PATH --dataset DIR [options]

Thin entry point for pipeline.download.job. See docs/download.md.
"""

import sys

from pipeline.download.job import DownloadStage
from pipeline.entrypoint import run_stage

if __name__ == "__main__":
    sys.exit(run_stage(DownloadStage()))
