"""spark-submit jobs/score.py --dataset DIR --model NAME --pretrained TAG_OR_PATH [options]

Thin entry point for pipeline.score.job. See docs/score.md.
"""

import sys

from pipeline.entrypoint import run_stage
from pipeline.score.job import ScoreStage

if __name__ == "__main__":
    sys.exit(run_stage(ScoreStage()))
