"""The stages as the tests call them: options parsed from a command line, run on a given Spark."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipeline.build.job import BuildStage
from pipeline.build.options import BuildOptions
from pipeline.dedup.job import DedupStage
from pipeline.dedup.options import DedupOptions
from pipeline.download.job import DownloadStage
from pipeline.download.options import DownloadOptions
from pipeline.executor import SparkExecutor
from pipeline.score.job import ScoreStage
from pipeline.score.options import ScoreOptions


def download(spark: Any, options: DownloadOptions) -> dict[str, Any]:
    return DownloadStage().run(SparkExecutor(spark), options)


def score(spark: Any, options: ScoreOptions) -> dict[str, Any]:
    return ScoreStage().run(SparkExecutor(spark), options)


def dedup(spark: Any, options: DedupOptions) -> dict[str, Any]:
    return DedupStage().run(SparkExecutor(spark), options)


def build(spark: Any, options: BuildOptions) -> dict[str, Any]:
    return BuildStage().run(SparkExecutor(spark), options)


def download_options(argv: Sequence[str]) -> DownloadOptions:
    return DownloadStage().parse(argv)


def score_options(argv: Sequence[str]) -> ScoreOptions:
    return ScoreStage().parse(argv)


def dedup_options(argv: Sequence[str]) -> DedupOptions:
    return DedupStage().parse(argv)


def build_options(argv: Sequence[str]) -> BuildOptions:
    return BuildStage().parse(argv)


STAGES = {"download": DownloadStage, "score": ScoreStage, "dedup": DedupStage, "build": BuildStage}


def parser(stage: str) -> Any:
    """The command-line parser of a stage ("download", "score", "dedup", "build")."""
    return STAGES[stage]().parser()


def check_inputs(stage: str, options: Any) -> None:
    STAGES[stage]().check_inputs(options)
