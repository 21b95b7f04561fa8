"""The options of ``corpusforge demo`` (light: the command line is built without importing torch)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.cli_options import option


@dataclass(frozen=True)
class DemoOptions:
    """``corpusforge demo``: where to write and how big a world to run the pipeline on."""

    workdir: Path = option(
        Path("demo_output"), help="folder for the world, the dataset and the model", parse=Path
    )
    images: int = option(1000, help="pictures in the synthetic world")
    faults_per_kind: int = option(2, help="URLs of each fault kind added to the list")
    junk_captions: float = option(
        0.03,
        help="share of pictures whose caption is junk alt text (file names, URLs, noise), which "
        "build_shards' caption rules drop",
    )
    seed: int = option(0, help="seed of the world and the runs")
    master: str = option("local[2]", help="Spark master of the jobs")
    scorer_pairs: int = option(2000, help="clean pairs to train the CLIP scorer on")
    scorer_steps: int = option(250, help="training steps of the CLIP scorer")
    top_fraction: float = option(0.75, help="best-scored fraction kept in the final shards")
    train_steps: int = option(300, help="steps of the pretraining run")
