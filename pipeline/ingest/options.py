"""Options for reading URL lists."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.errors import UserInputError

FORMATS = ("auto", "parquet", "csv", "tsv", "jsonl", "txt")
HEADER_MODES = ("auto", "yes", "no")


@dataclass(frozen=True)
class IngestOptions:
    """Where the URL list is and how to read it."""

    urls: str
    input_format: str = "auto"
    url_col: str | None = None  # None: "url", else URL / image_url / a column of URLs (no header)
    caption_col: str | None = None  # None: "caption", else TEXT / text / alt; "" for no captions
    keep_cols: tuple[str, ...] = ()
    header: str = "auto"  # CSV/TSV: does the first line name the columns?
    allow_empty_caption: bool = False
    batch_size: int = 10_000

    def __post_init__(self) -> None:
        if self.input_format not in FORMATS:
            raise UserInputError(f"--input-format must be one of {FORMATS}, got {self.input_format!r}")
        if self.header not in HEADER_MODES:
            raise UserInputError(f"--header must be one of {HEADER_MODES}, got {self.header!r}")
        if self.batch_size < 1:
            raise UserInputError("batch size must be >= 1")
