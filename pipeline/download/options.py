"""Options of the download job: every default and command-line option written once, here."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from pipeline.cli_options import comma_strings, option, section
from pipeline.download.error_rates import ErrorRateOptions
from pipeline.download.retry_classes import RETRYABLE, RETRYABLE_TOKEN, parse_retry_classes
from pipeline.download.verify_hash import HashCheck, hash_check, parse_verify_hash
from pipeline.errors import UserInputError
from pipeline.fetch.options import FetchOptions
from pipeline.image.options import ImageOptions
from pipeline.ingest.options import IngestOptions
from pipeline.storage import storage_url

APPEND_SKIP_URLS = ("stored", "failed")
OUTPUT_FORMATS = ("webdataset", "parquet", "files")


@dataclass(frozen=True)
class DownloadOptions:
    """Everything the download job needs; immutable so it can be shipped to executors."""

    dataset: str = option(
        parse=storage_url, help="dataset root folder (any fsspec URL)", aliases=("--output_folder",)
    )
    ingest: IngestOptions = section(IngestOptions, None, required=True)
    fetch: FetchOptions = section(FetchOptions, "network")
    image: ImageOptions = section(ImageOptions, "image")
    samples_per_shard: int = option(
        10_000, help="input rows per raw shard", group="output", aliases=("--number_sample_per_shard",)
    )
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
    # -- retry, append, error-rate warnings (docs/download.md) ---------------------------------
    retry_failed: tuple[str, ...] = option(
        (),
        parse=comma_strings,
        show=lambda classes: ",".join(classes) or "off",
        const=RETRYABLE_TOKEN,
        metavar="CLASSES",
        help="fetch again the failed rows of complete shards whose class is in CLASSES (comma-separated: "
        "error classes, http_error:NNN, http_error:5xx, retryable = "
        + ",".join(RETRYABLE)
        + ") and rewrite those shards in place",
        group="retry and append",
    )
    append: bool = option(
        False,
        help="add --urls to the dataset as new input shards after the existing ones (pairs already in "
        "the dataset are skipped); the same list again adds nothing",
        group="retry and append",
    )
    append_skip_urls: tuple[str, ...] = option(
        (),
        parse=comma_strings,
        show=lambda which: ",".join(which) or "none",
        metavar="WHICH",
        help="with --append, also skip rows whose URL the dataset already holds: 'stored' (a success), "
        "'failed' (failed with a class --retry-failed would not retry), or both",
        group="retry and append",
    )
    warnings: ErrorRateOptions = section(ErrorRateOptions, "error-rate warnings")
    # -- img2dataset compatibility (docs/download.md, "img2dataset users") -----------------------
    output_format: str = option(
        "webdataset",
        choices=OUTPUT_FORMATS,
        help="webdataset: raw/ only; parquet or files: also a copy in img2dataset's layout under "
        "DIR/export/FORMAT/ (raw/ keeps the tars every later stage reads)",
        group="output",
        aliases=("--output_format",),
    )
    verify_hash: str = option(
        "",
        parse=parse_verify_hash,
        metavar="ALGORITHM:COLUMN",
        show=lambda spec: spec or "off",
        help="fail a row (hash_mismatch) whose downloaded bytes' digest (md5, sha1, sha256, sha512) is "
        "not the hex value in COLUMN; img2dataset's [COLUMN,ALGORITHM] is accepted",
        group="input",
        aliases=("--verify_hash",),
    )

    def __post_init__(self) -> None:
        if self.output_format not in OUTPUT_FORMATS:
            raise UserInputError(
                f"--output-format must be one of {OUTPUT_FORMATS}, got {self.output_format!r}"
            )
        try:
            object.__setattr__(self, "verify_hash", parse_verify_hash(self.verify_hash))
        except ValueError as exc:
            raise UserInputError(f"--verify-hash {self.verify_hash!r}: {exc}") from exc
        check = self.hash_check
        if check is not None and check.column not in self.ingest.keep_cols:
            # The expected digests are read with each row, as a kept column.
            keep = (*self.ingest.keep_cols, check.column)
            object.__setattr__(self, "ingest", dataclasses.replace(self.ingest, keep_cols=keep))
        if self.samples_per_shard < 1:
            raise UserInputError(f"--samples-per-shard must be >= 1, got {self.samples_per_shard}")
        if self.decode_threads < 0:
            raise UserInputError(f"--decode-threads must be >= 0, got {self.decode_threads}")
        if self.retry_failed:
            parse_retry_classes(self.retry_failed)  # refuses an unknown class
        unknown = set(self.append_skip_urls) - set(APPEND_SKIP_URLS)
        if unknown:
            raise UserInputError(
                f"--append-skip-urls takes {' and/or '.join(APPEND_SKIP_URLS)}, not "
                f"{', '.join(sorted(unknown))}"
            )
        if self.append_skip_urls and not self.append:
            raise UserInputError("--append-skip-urls applies to the list added with --append; pass --append")
        if self.overwrite and (self.append or self.retry_failed):
            raise UserInputError(
                "--overwrite deletes the dataset: it cannot be combined with --append or --retry-failed"
            )

    @property
    def hash_check(self) -> HashCheck | None:
        """What ``--verify-hash`` asks to check on every downloaded body (None: nothing)."""
        return hash_check(self.verify_hash)
