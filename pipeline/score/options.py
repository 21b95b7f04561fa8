"""Options of the score job, built once from the command line."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from pipeline.errors import UserInputError

DEFAULT_THRESHOLDS = (0.2, 0.25, 0.28, 0.3, 0.32, 0.35)
DEFAULT_TOP_FRACTIONS = (0.1, 0.2, 0.3, 0.5, 0.7)


@dataclass(frozen=True)
class ScoreOptions:
    """Everything the score job needs; immutable so it can be shipped to executors."""

    dataset: str
    model: str
    pretrained: str
    batch_size: int = 256
    device: str = "auto"
    loader_threads: int = 2
    save_embeddings: bool = False
    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS
    top_fractions: tuple[float, ...] = DEFAULT_TOP_FRACTIONS
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise UserInputError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.loader_threads < 1:
            raise UserInputError(f"--loader-threads must be >= 1, got {self.loader_threads}")
        if not all(0 < f <= 1 for f in self.top_fractions):
            raise UserInputError(f"--top-fractions must be in (0, 1], got {self.top_fractions}")


def build_parser() -> argparse.ArgumentParser:
    """The ``jobs/score.py`` command line; every option shows its default in --help."""
    p = argparse.ArgumentParser(
        prog="spark-submit jobs/score.py",
        description="Score every downloaded image-caption pair with a CLIP model.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--dataset", required=True, help="dataset root with raw/ shards (any fsspec URL)")
    p.add_argument("--model", required=True, help="open_clip model name, e.g. ViT-B-32 or corpusforge-tiny")
    p.add_argument(
        "--pretrained",
        required=True,
        help="open_clip pretrained tag (needs the hub) or a local checkpoint path",
    )
    p.add_argument("--batch-size", type=int, default=256, help="pairs per forward pass")
    p.add_argument("--device", default="auto", help="auto (GPU if visible, else CPU), cpu, cuda, cuda:N")
    p.add_argument("--loader-threads", type=int, default=2, help="threads decoding and preprocessing images")
    p.add_argument(
        "--save-embeddings",
        action="store_true",
        help="also write float16 image and text embeddings to scores/embeddings/",
    )
    p.add_argument(
        "--thresholds",
        default=",".join(map(str, DEFAULT_THRESHOLDS)),
        help="absolute thresholds to report the kept fraction for",
    )
    p.add_argument(
        "--top-fractions",
        default=",".join(map(str, DEFAULT_TOP_FRACTIONS)),
        help="fractions to keep (DataComp style) to report the threshold for",
    )
    p.add_argument("--overwrite", action="store_true", help="delete scores/ first instead of resuming")
    return p


def options_from_args(argv: list[str] | None = None) -> ScoreOptions:
    """Parse the command line into frozen options (errors exit with a usage message)."""
    parser = build_parser()
    a = parser.parse_args(argv)
    try:
        return ScoreOptions(
            dataset=a.dataset,
            model=a.model,
            pretrained=a.pretrained,
            batch_size=a.batch_size,
            device=a.device,
            loader_threads=a.loader_threads,
            save_embeddings=a.save_embeddings,
            thresholds=_floats(a.thresholds, "--thresholds"),
            top_fractions=_floats(a.top_fractions, "--top-fractions"),
            overwrite=a.overwrite,
        )
    except UserInputError as exc:
        parser.error(str(exc))
        raise


def _floats(text: str, flag: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise UserInputError(f"{flag} takes comma-separated numbers, got {text!r}") from exc
