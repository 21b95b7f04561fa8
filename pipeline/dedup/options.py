"""Options of the dedup job, built once from the command line."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.cli_options import option
from pipeline.dedup.complexity import DEFAULT_MAX_SIGNATURE_DISTANCE, DEFAULT_MIN_COMPLEXITY
from pipeline.dedup.verify import DEFAULT_MAX_THUMBNAIL_DISTANCE
from pipeline.errors import UserInputError
from pipeline.storage import storage_url

# Chosen by the quality check (docs/benchmarks.md, "Dedup quality").
DEFAULT_MAX_DISTANCE = 10
DEFAULT_CENTRE_MAX_DISTANCE = 6
DEFAULT_NEAR_DUPLICATE_DISTANCE = 4


@dataclass(frozen=True)
class DedupOptions:
    """Everything the dedup job needs; immutable so it can be shipped to executors."""

    dataset: str = option(parse=storage_url, help="dataset root with raw/ shards (any fsspec URL)")
    benchmarks: tuple[str, ...] = option(
        (),
        flag="--benchmark",
        repeat=True,
        parse=storage_url,
        metavar="PATH",
        help="benchmark images: a folder of images, WebDataset .tar file(s) or a folder of them, or a "
        "parquet of precomputed hashes (column phash: int64, uint64 or 16 hex digits; optional "
        "benchmark_id)",
    )
    max_distance: int = option(
        DEFAULT_MAX_DISTANCE,
        help="largest pHash Hamming distance (bits) that counts as a benchmark duplicate",
        group="benchmark matching",
    )
    centre_max_distance: int = option(
        DEFAULT_CENTRE_MAX_DISTANCE,
        help="also match when the pHashes of the pictures' centres (central 60%% of each side) are within "
        "this distance: finds copies with a caption band or watermark at an edge (-1: off)",
        group="benchmark matching",
    )
    flip_invariant: bool = option(
        False,
        help="also match mirror images (benchmark hashed flipped too; costs some false positives)",
        group="benchmark matching",
    )
    within_corpus: bool = option(
        True,
        negate="--no-within-corpus",
        help="skip exact (sha256) and near (pHash) duplicate detection inside the corpus",
        group="within the corpus",
    )
    near_duplicate_distance: int = option(
        DEFAULT_NEAR_DUPLICATE_DISTANCE,
        help="largest pHash distance between two corpus images that makes them near-duplicates",
        group="within the corpus",
    )
    min_complexity: float = option(
        DEFAULT_MIN_COMPLEXITY,
        help="images whose 32x32 greyscale thumbnail has a lower standard deviation are low-complexity: "
        "their pHash matches must also pass the colour-signature check",
        group="low-complexity guard",
    )
    max_signature_distance: float = option(
        DEFAULT_MAX_SIGNATURE_DISTANCE,
        help="largest mean absolute difference of the 8x8 colour thumbnails for a low-complexity match",
        group="low-complexity guard",
    )
    max_thumbnail_distance: float = option(
        DEFAULT_MAX_THUMBNAIL_DISTANCE,
        help="verification: a hash candidate (benchmark or within the corpus) is dropped only if its "
        "32x32 colour thumbnail, aligned and after the closest allowed brightness/colour change, "
        "differs from the other image's in at most this share of pixels (0-1; -1: no thumbnail check)",
        group="verification",
    )
    skip_bad_benchmark_images: bool = option(
        False,
        help="warn about and skip undecodable benchmark images instead of failing",
        group="benchmark matching",
    )
    rehash_benchmarks: bool = option(
        False,
        help="hash the benchmark sources again even if dedup/benchmark_hashes.parquet matches them",
        group="benchmark matching",
    )
    audit_limit: int = option(
        60, help="benchmark images shown in the audit grid (0: no grid)", group="output and resources"
    )
    broadcast_limit_mb: int = option(
        1024,
        help="largest benchmark index broadcast to executors; above it a shuffle join is used",
        group="output and resources",
    )

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
        if not (self.max_thumbnail_distance == -1 or 0 <= self.max_thumbnail_distance <= 1):
            raise UserInputError(
                f"--max-thumbnail-distance must be in 0..1 (or -1: off), got {self.max_thumbnail_distance}"
            )
        if self.min_complexity < 0 or self.max_signature_distance < 0:
            raise UserInputError("--min-complexity and --max-signature-distance must be >= 0")
        if self.audit_limit < 0:
            raise UserInputError(f"--audit-limit must be >= 0, got {self.audit_limit}")
        if self.broadcast_limit_mb < 0:
            raise UserInputError(f"--broadcast-limit-mb must be >= 0, got {self.broadcast_limit_mb}")
        if not self.benchmarks and not self.within_corpus:
            raise UserInputError("nothing to do: give --benchmark PATH or drop --no-within-corpus")
