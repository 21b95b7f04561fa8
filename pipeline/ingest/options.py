"""Options for reading URL lists."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.cli_options import comma_strings, option, show_commas
from pipeline.errors import UserInputError
from pipeline.storage import storage_url

FORMATS = ("auto", "parquet", "csv", "tsv", "json", "jsonl", "txt")
HEADER_MODES = ("auto", "yes", "no")


def input_format(text: str) -> str:
    """A format of :data:`FORMATS`; img2dataset's ``csv.gz``-style names are accepted (gzip is
    recognised from the file name either way)."""
    name = text.strip().lower().removesuffix(".gz")
    if name not in FORMATS:
        raise ValueError(f"expected one of {', '.join(FORMATS)} (or img2dataset's NAME.gz)")
    return name


@dataclass(frozen=True)
class IngestOptions:
    """Where the URL list is and how to read it."""

    urls: str = option(
        parse=storage_url, help="URL list file or folder (any fsspec URL)", aliases=("--url_list",)
    )
    input_format: str = option(
        "auto",
        parse=input_format,
        metavar="{" + ",".join(FORMATS) + "}",
        help="auto: from the file extension; json: a JSON array of objects (img2dataset's json)",
        group="input",
        aliases=("--input_format",),
    )
    # None: "url", else URL / image_url / a column of URLs (no header)
    url_col: str | None = option(
        None,
        help="URL column; unset: the first of url, image_url, link (any case)",
        group="input",
        aliases=("--url_col",),
    )
    # None: "caption", else TEXT / text / alt; "" for no captions
    caption_col: str | None = option(
        None,
        help="caption column; unset: the first of caption, text, alt, title (any case); empty for none",
        group="input",
        aliases=("--caption_col",),
    )
    keep_cols: tuple[str, ...] = option(
        (),
        parse=comma_strings,
        show=show_commas,
        help="comma-separated extra columns to keep in KEY.json",
        group="input",
        aliases=("--save_additional_columns",),
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
