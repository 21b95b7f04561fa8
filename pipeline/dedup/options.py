"""Options of the dedup job, built once from the command line."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.cli_options import option
from pipeline.dedup.complexity import DEFAULT_MAX_SIGNATURE_DISTANCE, DEFAULT_MIN_COMPLEXITY
from pipeline.dedup.layout import DEFAULT_MIN_SIMILARITY as DEFAULT_LAYOUT_MIN_SIMILARITY
from pipeline.dedup.verify import DEFAULT_MAX_THUMBNAIL_DISTANCE
from pipeline.errors import UserInputError
from pipeline.storage import storage_url

# Chosen by the quality check (docs/benchmarks.md, "Dedup quality").
DEFAULT_MAX_DISTANCE = 10
DEFAULT_CENTRE_MAX_DISTANCE = 6
DEFAULT_NEAR_DUPLICATE_DISTANCE = 4
DEFAULT_EMBEDDING_MIN_SIMILARITY = 0.9


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
    embeddings: bool = option(
        False,
        help="also search the benchmark images by the score job's image embeddings (needs jobs/score.py "
        "--save-embeddings on every shard): finds mirror images and crops the hashes miss; every such "
        "candidate is verified by the thumbnails like a hash candidate",
        group="embeddings",
    )
    embedding_min_similarity: float = option(
        DEFAULT_EMBEDDING_MIN_SIMILARITY,
        help="with --embeddings: cosine similarity to a benchmark image's picture, mirror or 15%% centre "
        "crop at which a sample becomes a candidate",
        group="embeddings",
    )
    layout_search: bool = option(
        True,
        negate="--no-layout-search",
        help="do not search the benchmark images by the layout of their verification thumbnails (8x8 "
        "luma cells of the picture and 4x4 of its centre; no model needed), which finds copies of "
        "drawn graphics (icons, logos, flags) whose pHash bits are noise; every such candidate is "
        "verified by the thumbnails like a hash candidate",
        group="layout search",
    )
    layout_min_similarity: float = option(
        DEFAULT_LAYOUT_MIN_SIMILARITY,
        help="the layout search: cosine similarity of the layouts (the picture, its mirror, its 15%% "
        "centre crop, or the centres) at which a sample becomes a candidate",
        group="layout search",
    )
    semantic_threshold: float = option(
        -1.0,
        help="SemDeDup: drop all but one of each group of corpus samples whose image embeddings reach "
        "this cosine similarity inside a k-means cluster (needs --save-embeddings scores; -1: off)",
        group="embeddings",
    )
    semantic_clusters: int = option(
        0,
        help="k-means clusters for --semantic-threshold (0: the square root of the number of samples)",
        group="embeddings",
    )
    semantic_keep: str = option(
        "largest",
        choices=("largest", "score"),
        help="which sample of a semantic group is kept: the largest original image, as for near "
        "duplicates, or the best CLIP score (choose it with build_shards --top-fraction, so that a "
        "group's best-scored picture is the one that competes for the top)",
        group="embeddings",
    )
    embedding_device: str = option(
        "auto",
        help="device the benchmark images are embedded on (auto: a GPU when one is visible)",
        group="embeddings",
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

    @property
    def semantic(self) -> bool:
        """Whether semantic duplicates are looked for."""
        return self.semantic_threshold != -1

    @property
    def searches_layouts(self) -> bool:
        """Whether the layout search runs: on by default, for benchmark images, and only with the
        thumbnail verification (pictures of one layout in other colours are close by design, so its
        candidates are only dropped when the thumbnails agree)."""
        return self.layout_search and bool(self.benchmarks) and self.max_thumbnail_distance >= 0

    @property
    def reads_embeddings(self) -> bool:
        """Whether the job needs the score job's saved embeddings."""
        return self.embeddings or self.semantic

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
        if not 0 < self.embedding_min_similarity <= 1:
            raise UserInputError(
                f"--embedding-min-similarity must be in (0, 1], got {self.embedding_min_similarity}"
            )
        if self.embeddings and self.max_thumbnail_distance == -1:
            raise UserInputError(
                "--embeddings needs the thumbnail verification: an embedding is close for pictures of the "
                "same kind, so its candidates are only dropped when the thumbnails agree; drop "
                "--max-thumbnail-distance -1"
            )
        if not 0 < self.layout_min_similarity <= 1:
            raise UserInputError(
                f"--layout-min-similarity must be in (0, 1], got {self.layout_min_similarity}"
            )
        if self.embeddings and not self.benchmarks:
            raise UserInputError("--embeddings searches benchmark images: give --benchmark PATH")
        if not (self.semantic_threshold == -1 or 0 < self.semantic_threshold <= 1):
            raise UserInputError(
                f"--semantic-threshold must be in (0, 1] (or -1: off), got {self.semantic_threshold}"
            )
        if self.semantic_clusters < 0:
            raise UserInputError(f"--semantic-clusters must be >= 0, got {self.semantic_clusters}")
        if self.semantic_threshold != -1 and not self.within_corpus:
            raise UserInputError(
                "--semantic-threshold finds duplicates within the corpus: drop --no-within-corpus"
            )
        if not self.benchmarks and not self.within_corpus:
            raise UserInputError("nothing to do: give --benchmark PATH or drop --no-within-corpus")
