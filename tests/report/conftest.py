"""A dataset taken through every stage with the real jobs, and copies of it at earlier stages."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.synthetic.world import generate_world, held_out_spec
from pipeline.train.loop import train
from pipeline.train.options import options_from_args as train_options
from tests.stages import build as build
from tests.stages import build_options as build_options
from tests.stages import dedup as dedup
from tests.stages import dedup_options as dedup_options


@dataclass(frozen=True)
class Pipeline:
    """Outputs of every stage: ``dataset`` (raw, scores, dedup, final) and ``train`` (trainer output)."""

    dataset: Path
    train: Path
    min_clip_score: float


def all_scores(dataset: Path) -> dict[str, float]:
    """uid -> clip_score over scores/*.parquet."""
    out: dict[str, float] = {}
    for path in sorted((dataset / "scores").glob("[0-9]*.parquet")):
        table = pq.read_table(path, columns=["uid", "clip_score"])
        out.update(zip(table.column("uid").to_pylist(), table.column("clip_score").to_pylist(), strict=True))
    return out


@pytest.fixture(scope="session")
def scored(scored: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The downloaded world's raw/ scored with the tiny random checkpoint (read-only: tests copy it).

    raw/ and scores/ of the session's scored dataset (tests/conftest.py), which the build tests
    share: scored once, not once per test folder. Without ``_input/``, so the report does not
    show the download's planned shard count.
    """
    dataset = tmp_path_factory.mktemp("report_scored") / "dataset"
    for folder in ("raw", "scores"):
        shutil.copytree(scored / folder, dataset / folder)
    return dataset


@pytest.fixture(scope="session")
def pipeline(spark, world: Path, scored: Path, tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    """The scored dataset deduplicated against the world's benchmark, built and trained on (read-only)."""
    root = tmp_path_factory.mktemp("report_pipeline")
    dataset = root / "dataset"
    shutil.copytree(scored, dataset)
    dedup(spark, dedup_options(["--dataset", str(dataset), "--benchmark", str(world / "benchmark")]))
    # About half the samples pass: a threshold in the middle of this checkpoint's scores.
    threshold = round(float(np.median(list(all_scores(dataset).values()))), 3)
    summary = build(
        spark,
        build_options(
            [
                "--dataset",
                str(dataset),
                "--min-clip-score",
                str(threshold),
                "--samples-per-shard",
                "8",
                "--min-shards",
                "0",
            ]
        ),
    )
    train(
        train_options(
            [
                "--shards",
                summary["shard_pattern"],
                "--output",
                str(root / "train"),
                "--batch-size",
                "4",
                "--steps",
                "4",
                "--warmup-steps",
                "1",
                "--log-every",
                "1",
                "--eval-every",
                "2",
                "--eval-world",
                str(generate_world(root / "eval_world", held_out_spec(images=24))),
                "--eval-batch-size",
                "12",
                "--shuffle-buffer",
                "8",
                "--workers",
                "0",
                "--threads",
                "1",
                "--save-every",
                "0",
                "--no-tensorboard",
            ]
        )
    )
    return Pipeline(dataset=dataset, train=root / "train", min_clip_score=threshold)


def stage_copy(source: Path, destination: Path, stages: tuple[str, ...]) -> Path:
    """A dataset holding only the given stage folders of ``source`` (the other stages 'not run yet')."""
    destination.mkdir(parents=True)
    for folder in stages:
        shutil.copytree(source / folder, destination / folder)
    return destination
