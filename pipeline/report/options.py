"""Options of ``corpusforge report``, built once from the command line (kept light: no plotting imports)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from pipeline.errors import UserInputError


@dataclass(frozen=True)
class ReportOptions:
    """What ``corpusforge report`` reads and how many pairs it shows."""

    dataset: str
    train_dir: str | None = None
    samples: int = 12
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.samples <= 100:
            raise UserInputError(f"--samples must be between 1 and 100, got {self.samples}")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``corpusforge report`` options; every one shows its default in --help."""
    p.add_argument("--dataset", required=True, help="dataset root the jobs wrote to (any fsspec URL)")
    p.add_argument(
        "--train-dir",
        default=None,
        help="the --output folder of `corpusforge train` (metrics.jsonl or metrics.csv, summary.json)",
    )
    p.add_argument("--samples", type=int, default=12, help="kept and dropped pairs shown in each grid")
    p.add_argument("--seed", type=int, default=0, help="seed of the random choice of pairs shown")


def options_from_namespace(a: argparse.Namespace) -> ReportOptions:
    """Frozen options from parsed arguments (raises UserInputError on a bad value)."""
    return ReportOptions(dataset=a.dataset, train_dir=a.train_dir, samples=a.samples, seed=a.seed)
