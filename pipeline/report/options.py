"""Options of ``corpusforge report``, built once from the command line (kept light: no plotting imports)."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.cli_options import option
from pipeline.errors import UserInputError
from pipeline.storage import storage_url


@dataclass(frozen=True)
class ReportOptions:
    """What ``corpusforge report`` reads and how many pairs it shows."""

    dataset: str = option(parse=storage_url, help="dataset root the jobs wrote to (any fsspec URL)")
    train_dir: str | None = option(
        None,
        parse=storage_url,
        help="the --output folder of `corpusforge train` (metrics.jsonl or metrics.csv, summary.json; "
        "any fsspec URL)",
    )
    samples: int = option(12, help="kept and dropped pairs shown in each grid")
    seed: int = option(0, help="seed of the random choice of pairs shown")

    def __post_init__(self) -> None:
        if not 1 <= self.samples <= 100:
            raise UserInputError(f"--samples must be between 1 and 100, got {self.samples}")

