"""Options of the download job: every default and command-line option written once, here."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.cli_options import option, section
from pipeline.errors import UserInputError
from pipeline.fetch.options import FetchOptions
from pipeline.image.options import ImageOptions
from pipeline.ingest.options import IngestOptions
from pipeline.storage import storage_url


@dataclass(frozen=True)
class DownloadOptions:
    """Everything the download job needs; immutable so it can be shipped to executors."""

    dataset: str = option(parse=storage_url, help="dataset root folder (any fsspec URL)")
    ingest: IngestOptions = section(IngestOptions, None, required=True)
    fetch: FetchOptions = section(FetchOptions, "network")
    image: ImageOptions = section(ImageOptions, "image")
    samples_per_shard: int = option(10_000, help="input rows per raw shard", group="output")
    skip_duplicate_urls: bool = option(
        False,
        help="fetch a URL only for its first row (exact duplicate pairs are always skipped)",
        group="input",
    )
    decode_threads: int = option(
        0,
        help="image threads per Spark task (and cores it asks for); 0: on the task's event loop thread "
        "(one core per task)",
        group="image",
    )
    overwrite: bool = option(
        False, help="delete the dataset's download outputs first instead of resuming", group="output"
    )

    def __post_init__(self) -> None:
        if self.samples_per_shard < 1:
            raise UserInputError(f"--samples-per-shard must be >= 1, got {self.samples_per_shard}")
        if self.decode_threads < 0:
            raise UserInputError(f"--decode-threads must be >= 0, got {self.decode_threads}")
