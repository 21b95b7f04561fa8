"""Options of the dedup job, built once from the command line."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from pipeline.dedup.complexity import DEFAULT_MAX_SIGNATURE_DISTANCE, DEFAULT_MIN_COMPLEXITY
from pipeline.errors import UserInputError

# Chosen by the quality check (docs/benchmarks.md, "Dedup quality").
DEFAULT_MAX_DISTANCE = 10
DEFAULT_CENTRE_MAX_DISTANCE = 6
DEFAULT_NEAR_DUPLICATE_DISTANCE = 4


@dataclass(frozen=True)
class DedupOptions:
    """Everything the dedup job needs; immutable so it can be shipped to executors."""

    dataset: str
    benchmarks: tuple[str, ...] = ()
    max_distance: int = DEFAULT_MAX_DISTANCE
    centre_max_distance: int = DEFAULT_CENTRE_MAX_DISTANCE  # -1: no centre hashes
    flip_invariant: bool = False
    within_corpus: bool = True
    near_duplicate_distance: int = DEFAULT_NEAR_DUPLICATE_DISTANCE
    min_complexity: float = DEFAULT_MIN_COMPLEXITY
    max_signature_distance: float = DEFAULT_MAX_SIGNATURE_DISTANCE
    skip_bad_benchmark_images: bool = False
    rehash_benchmarks: bool = False
    audit_limit: int = 60
    broadcast_limit_mb: int = 1024

    def __post_init__(self) -> None:
        if not 0 <= self.max_distance <= 32:
            raise UserInputError(f"--max-distance must be in 0..32, got {self.max_distance}")
        if not -1 <= self.centre_max_distance <= 32:
            raise UserInputError(
                f"--centre-max-distance must be in 0..32 (or -1: off), got {self.centre_max_distance}"
            )
        if not 0 <= self.near_duplicate_distance <= 32:
            raise UserInputError(
                f"--near-duplicate-distance must be in 0..32, got {self.near_duplicate_distance}"
            )
        if self.min_complexity < 0 or self.max_signature_distance < 0:
            raise UserInputError("--min-complexity and --max-signature-distance must be >= 0")
        if self.audit_limit < 0:
            raise UserInputError(f"--audit-limit must be >= 0, got {self.audit_limit}")
        if self.broadcast_limit_mb < 0:
            raise UserInputError(f"--broadcast-limit-mb must be >= 0, got {self.broadcast_limit_mb}")
        if not self.benchmarks and not self.within_corpus:
            raise UserInputError("nothing to do: give --benchmark PATH or drop --no-within-corpus")


def build_parser() -> argparse.ArgumentParser:
    """The ``jobs/dedup.py`` command line; every option shows its default in --help."""
    p = argparse.ArgumentParser(
        prog="spark-submit jobs/dedup.py",
        description=(
            "Find corpus images that are near-duplicates of benchmark images (pHash within a Hamming "
            "distance, exact search) and duplicates within the corpus; write dedup/matches.parquet "
            "and an audit grid."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--dataset", required=True, help="dataset root with raw/ shards (any fsspec URL)")
    p.add_argument(
        "--benchmark",
        action="append",
        default=[],
        metavar="PATH",
        help="benchmark images: a folder of images, WebDataset .tar file(s) or a folder of them, or a "
        "parquet of precomputed hashes (column phash: int64, uint64 or 16 hex digits; optional "
        "benchmark_id); repeatable",
    )
    b = p.add_argument_group("benchmark matching")
    b.add_argument(
        "--max-distance",
        type=int,
        default=DEFAULT_MAX_DISTANCE,
        help="largest pHash Hamming distance (bits) that counts as a benchmark duplicate",
    )
    b.add_argument(
        "--centre-max-distance",
        type=int,
        default=DEFAULT_CENTRE_MAX_DISTANCE,
        help="also match when the pHashes of the pictures' centres (central 60%% of each side) are within "
        "this distance: finds copies with a caption band or watermark at an edge (-1: off)",
    )
    b.add_argument(
        "--flip-invariant",
        action="store_true",
        help="also match mirror images (benchmark hashed flipped too; costs some false positives)",
    )
    b.add_argument(
        "--skip-bad-benchmark-images",
        action="store_true",
        help="warn about and skip undecodable benchmark images instead of failing",
    )
    b.add_argument(
        "--rehash-benchmarks",
        action="store_true",
        help="hash the benchmark sources again even if dedup/benchmark_hashes.parquet matches them",
    )
    c = p.add_argument_group("within the corpus")
    c.add_argument(
        "--no-within-corpus",
        action="store_true",
        help="skip exact (sha256) and near (pHash) duplicate detection inside the corpus",
    )
    c.add_argument(
        "--near-duplicate-distance",
        type=int,
        default=DEFAULT_NEAR_DUPLICATE_DISTANCE,
        help="largest pHash distance between two corpus images that makes them near-duplicates",
    )
    g = p.add_argument_group("low-complexity guard")
    g.add_argument(
        "--min-complexity",
        type=float,
        default=DEFAULT_MIN_COMPLEXITY,
        help="images whose 32x32 greyscale thumbnail has a lower standard deviation are low-complexity: "
        "their pHash matches must also pass the colour-signature check",
    )
    g.add_argument(
        "--max-signature-distance",
        type=float,
        default=DEFAULT_MAX_SIGNATURE_DISTANCE,
        help="largest mean absolute difference of the 8x8 colour thumbnails for a low-complexity match",
    )
    o = p.add_argument_group("output and resources")
    o.add_argument(
        "--audit-limit", type=int, default=60, help="benchmark images shown in the audit grid (0: no grid)"
    )
    o.add_argument(
        "--broadcast-limit-mb",
        type=int,
        default=1024,
        help="largest benchmark index broadcast to executors; above it a shuffle join is used",
    )
    return p


def options_from_args(argv: list[str] | None = None) -> DedupOptions:
    """Parse the command line into frozen options (errors exit with a usage message)."""
    parser = build_parser()
    a = parser.parse_args(argv)
    try:
        return DedupOptions(
            dataset=a.dataset,
            benchmarks=tuple(a.benchmark),
            max_distance=a.max_distance,
            centre_max_distance=a.centre_max_distance,
            flip_invariant=a.flip_invariant,
            within_corpus=not a.no_within_corpus,
            near_duplicate_distance=a.near_duplicate_distance,
            min_complexity=a.min_complexity,
            max_signature_distance=a.max_signature_distance,
            skip_bad_benchmark_images=a.skip_bad_benchmark_images,
            rehash_benchmarks=a.rehash_benchmarks,
            audit_limit=a.audit_limit,
            broadcast_limit_mb=a.broadcast_limit_mb,
        )
    except UserInputError as exc:
        parser.error(str(exc))
        raise  # unreachable: parser.error exits
