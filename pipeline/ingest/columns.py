"""Finding the URL, caption and kept columns in a file's header."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.errors import UserInputError
from pipeline.ingest.options import IngestOptions

URL_ALIASES = ("url", "image_url", "img_url", "imageurl", "link")
CAPTION_ALIASES = ("caption", "text", "alt", "alt_text", "title", "description")


@dataclass(frozen=True)
class ColumnMap:
    """Which input column holds what; keys are names, or positions as strings without a header."""

    url: str
    caption: str | None
    keep: tuple[str, ...]


def looks_like_url(value: object) -> bool:
    return isinstance(value, str) and value.strip().lower().startswith(("http://", "https://"))


def resolve_columns(
    names: list[str], options: IngestOptions, source: str, first_row: list[object] | None = None
) -> ColumnMap:
    """Map the configured columns onto ``names``; raise a clear error naming ``source`` if missing.

    Without a header, ``names`` are positions ("0", "1", ...). Then the URL column defaults to the
    first field of the first row that looks like a URL and the caption to the other column when
    there are exactly two (the CC3M ``caption<TAB>url`` layout).
    """
    positional = bool(names) and all(n.isdigit() for n in names) and first_row is not None
    url = _pick(names, options.url_col, URL_ALIASES, "--url-col", source)
    if url is None and positional:
        url = next((n for n, v in zip(names, first_row, strict=False) if looks_like_url(v)), None)
    if url is None:
        raise UserInputError(
            f"{source}: no URL column found (looked for {options.url_col or URL_ALIASES}); "
            f"columns are {names}. Pass --url-col."
        )
    if options.caption_col == "":
        caption = None
    else:
        caption = _pick(names, options.caption_col, CAPTION_ALIASES, "--caption-col", source)
        if caption is None and positional and len(names) == 2:
            caption = next(n for n in names if n != url)
        if caption is None and options.caption_col is not None:
            raise UserInputError(
                f"{source}: caption column {options.caption_col!r} not found; columns are {names}"
            )
    for name in (url, caption, *options.keep_cols):
        if name is not None and names.count(name) > 1:
            # Which of the copies would be read is an accident of the format: refuse to guess.
            raise UserInputError(
                f"{source}: column {name!r} appears {names.count(name)} times; columns are {names}"
            )
    missing = [c for c in options.keep_cols if c not in names]
    if missing:
        raise UserInputError(f"{source}: --keep-cols {missing} not found; columns are {names}")
    return ColumnMap(url, caption, tuple(options.keep_cols))


def _pick(
    names: list[str], wanted: str | None, aliases: tuple[str, ...], flag: str, source: str
) -> str | None:
    if wanted is not None:
        if wanted in names:
            return wanted
        lowered = {n.lower(): n for n in names}
        if wanted.lower() in lowered:
            return lowered[wanted.lower()]
        if flag == "--url-col":
            raise UserInputError(f"{source}: {flag} {wanted!r} not found; columns are {names}")
        return None
    lowered = {n.lower(): n for n in names}
    for alias in aliases:
        if alias in lowered:
            return lowered[alias]
    return None
