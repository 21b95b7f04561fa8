"""Options for reading URL lists."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.cli_options import comma_strings, option, show_commas
from pipeline.errors import UserInputError
from pipeline.storage import storage_url

FORMATS = ("auto", "parquet", "csv", "tsv", "jsonl", "txt")
HEADER_MODES = ("auto", "yes", "no")


@dataclass(frozen=True)
class IngestOptions:
    """Where the URL list is and how to read it."""

    urls: str = option(parse=storage_url, help="URL list file or folder (any fsspec URL)")
    input_format: str = option("auto", choices=FORMATS, help="auto: from the file extension", group="input")
    # None: "url", else URL / image_url / a column of URLs (no header)
    url_col: str | None = option(
        None, help="URL column; unset: the first of url, image_url, link (any case)", group="input"
    )
    # None: "caption", else TEXT / text / alt; "" for no captions
    caption_col: str | None = option(
        None,
        help="caption column; unset: the first of caption, text, alt, title (any case); empty for none",
        group="input",
    )
    keep_cols: tuple[str, ...] = option(
        (),
        parse=comma_strings,
        show=show_commas,
        help="comma-separated extra columns to keep in KEY.json",
        group="input",
    )
    header: str = option("auto", choices=HEADER_MODES, help="CSV/TSV first line is a header", group="input")
    allow_empty_caption: bool = option(False, help="keep rows whose caption is empty", group="input")
    batch_size: int = 10_000

    def __post_init__(self) -> None:
        if self.input_format not in FORMATS:
            raise UserInputError(f"--input-format must be one of {FORMATS}, got {self.input_format!r}")
        if self.header not in HEADER_MODES:
            raise UserInputError(f"--header must be one of {HEADER_MODES}, got {self.header!r}")
        if self.batch_size < 1:
            raise UserInputError("batch size must be >= 1")
