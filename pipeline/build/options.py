"""Options of the build_shards job, built once from the command line."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Any

from pipeline.errors import UserInputError


@dataclass(frozen=True)
class BuildOptions:
    """Everything the build_shards job needs; immutable so it can be shipped to executors."""

    dataset: str
    min_clip_score: float | None = None
    top_fraction: float | None = None
    keep_corpus_duplicates: bool = False
    require_dedup: bool = False
    min_caption_length: int = 0
    min_image_size: int = 0
    max_aspect_ratio: float = math.inf
    samples_per_shard: int = 10_000
    seed: int = 0
    min_shards: int = 16
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.min_clip_score is not None and self.top_fraction is not None:
            raise UserInputError("--min-clip-score and --top-fraction are mutually exclusive: pass one")
        if self.min_clip_score is not None and not -1.0 <= self.min_clip_score <= 1.0:
            raise UserInputError(
                f"--min-clip-score must be in [-1, 1] (a cosine similarity), got {self.min_clip_score}"
            )
        if self.top_fraction is not None and not 0.0 < self.top_fraction <= 1.0:
            raise UserInputError(f"--top-fraction must be in (0, 1], got {self.top_fraction}")
        if self.min_caption_length < 0:
            raise UserInputError(f"--min-caption-length must be >= 0, got {self.min_caption_length}")
        if self.min_image_size < 0:
            raise UserInputError(f"--min-image-size must be >= 0, got {self.min_image_size}")
        if math.isnan(self.max_aspect_ratio) or self.max_aspect_ratio < 1:
            raise UserInputError(f"--max-aspect-ratio must be >= 1, got {self.max_aspect_ratio}")
        if self.samples_per_shard < 1:
            raise UserInputError(f"--samples-per-shard must be >= 1, got {self.samples_per_shard}")
        if self.min_shards < 0:
            raise UserInputError(f"--min-shards must be >= 0, got {self.min_shards}")

    @property
    def score_filter(self) -> bool:
        """True when a CLIP score rule is asked (so scores/ must exist)."""
        return self.min_clip_score is not None or self.top_fraction is not None

    def output_options(self) -> dict[str, Any]:
        """The options that decide which samples land in which shard (recorded for resume checks)."""
        return {
            "min_clip_score": self.min_clip_score,
            "top_fraction": self.top_fraction,
            "keep_corpus_duplicates": self.keep_corpus_duplicates,
            "min_caption_length": self.min_caption_length,
            "min_image_size": self.min_image_size,
            # JSON has no infinity: "inf" keeps the record valid JSON.
            "max_aspect_ratio": None if math.isinf(self.max_aspect_ratio) else self.max_aspect_ratio,
            "samples_per_shard": self.samples_per_shard,
            "seed": self.seed,
        }


def build_parser() -> argparse.ArgumentParser:
    """The ``jobs/build_shards.py`` command line; every option shows its default in --help."""
    p = argparse.ArgumentParser(
        prog="spark-submit jobs/build_shards.py",
        description=(
            "Select samples (CLIP score, dedup, caption and image rules) and write globally shuffled "
            "WebDataset shards of a uniform size to DIR/final/, ready for open_clip_train."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--dataset", required=True, help="dataset root with raw/ (and scores/, dedup/)")
    g = p.add_argument_group("CLIP score (needs scores/ from jobs/score.py; pick at most one)")
    score = g.add_mutually_exclusive_group()
    score.add_argument(
        "--min-clip-score", type=float, default=None, help="keep samples with clip_score >= X (LAION: 0.28)"
    )
    score.add_argument(
        "--top-fraction",
        type=float,
        default=None,
        help="keep the top F of all scored samples by clip_score (DataComp style), F in (0, 1]",
    )
    g = p.add_argument_group("dedup (dedup/matches.parquet from jobs/dedup.py)")
    g.add_argument(
        "--keep-corpus-duplicates",
        action="store_true",
        help="keep exact and near duplicates within the corpus (benchmark duplicates are always dropped)",
    )
    g.add_argument(
        "--require-dedup",
        action="store_true",
        help="fail when dedup/matches.parquet is missing (default: warn and build without dedup)",
    )
    g = p.add_argument_group("caption and image rules")
    g.add_argument(
        "--min-caption-length",
        type=int,
        default=0,
        help="drop captions shorter than this many characters (after stripping white space)",
    )
    g.add_argument(
        "--min-image-size", type=int, default=0, help="drop images whose original shorter side is below N px"
    )
    g.add_argument(
        "--max-aspect-ratio",
        type=float,
        default=math.inf,
        help="drop images whose original longer/shorter side ratio is above X",
    )
    g = p.add_argument_group("output")
    g.add_argument(
        "--samples-per-shard",
        type=int,
        default=10_000,
        help="samples in every final shard (only the last one may hold fewer)",
    )
    g.add_argument("--seed", type=int, default=0, help="seed of the global shuffle")
    g.add_argument(
        "--min-shards",
        type=int,
        default=16,
        help="warn when fewer shards are written (open_clip_train needs >= workers x GPUs shards)",
    )
    g.add_argument(
        "--overwrite",
        action="store_true",
        help="delete final/ first; needed to rebuild with other options or changed inputs",
    )
    return p


def options_from_args(argv: list[str] | None = None) -> BuildOptions:
    """Parse the command line into frozen options (errors exit with a usage message)."""
    parser = build_parser()
    a = parser.parse_args(argv)
    try:
        return BuildOptions(
            dataset=a.dataset,
            min_clip_score=a.min_clip_score,
            top_fraction=a.top_fraction,
            keep_corpus_duplicates=a.keep_corpus_duplicates,
            require_dedup=a.require_dedup,
            min_caption_length=a.min_caption_length,
            min_image_size=a.min_image_size,
            max_aspect_ratio=a.max_aspect_ratio,
            samples_per_shard=a.samples_per_shard,
            seed=a.seed,
            min_shards=a.min_shards,
            overwrite=a.overwrite,
        )
    except UserInputError as exc:
        parser.error(str(exc))
        raise
