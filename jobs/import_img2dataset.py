"""spark-submit jobs/import_img2dataset.py --source IMG2DATASET_OUTPUT --dataset DIR [options]

Thin entry point for pipeline.imports.job (also ``corpusforge import-img2dataset``). See docs/import.md.
"""

import sys

from pipeline.entrypoint import run_stage
from pipeline.imports.job import ImportStage

if __name__ == "__main__":
    sys.exit(run_stage(ImportStage()))
