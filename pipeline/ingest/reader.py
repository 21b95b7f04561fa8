"""Streaming readers for URL lists: parquet, CSV, TSV, JSONL and text, gzip or not, via fsspec.

Files are read in bounded batches, so memory does not grow with the list. Every input row comes
out as one canonical row: rows that cannot be used carry ``ingest_error`` instead of being
dropped, so later stages account for every input row.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.errors import ErrorClass, SampleError, UserInputError
from pipeline.ingest.columns import ColumnMap, looks_like_url, resolve_columns
from pipeline.ingest.options import IngestOptions
from pipeline.uid import make_uid, normalise_url
from schemas.url_list import URL_LIST_SCHEMA

log = logging.getLogger(__name__)

_EXTENSIONS = {
    ".parquet": "parquet",
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",  # a JSON array (img2dataset's json) or, starting with "{", JSON lines
    ".txt": "txt",
}
_CSV_FIELD_LIMIT = 1 << 20
csv.field_size_limit(_CSV_FIELD_LIMIT)


@dataclass(frozen=True)
class RawRow:
    """One input row before validation: values by column, or the reason it could not be parsed."""

    source_row: int
    values: dict[str, object] | None
    error: SampleError | None = None


def detect_format(path: str) -> str | None:
    """Format from the file name (``.gz`` ignored), or None if unknown."""
    name = path.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    for ext, fmt in _EXTENSIONS.items():
        if name.endswith(ext):
            return fmt
    return None


def list_input_files(urls: str, input_format: str = "auto") -> list[str]:
    """The input files of ``urls`` (a file or folder, any fsspec URL), sorted, as full URLs."""
    fs, path = fsspec.core.url_to_fs(urls)
    if not fs.exists(path):
        raise UserInputError(f"--urls {urls!r} does not exist")
    if fs.isdir(path):
        found = sorted(
            p
            for p in fs.find(path)
            if not p.rsplit("/", 1)[-1].startswith((".", "_"))
            and (input_format != "auto" or detect_format(p) is not None)
        )
        if not found:
            raise UserInputError(
                f"--urls {urls!r} holds no URL list files (.parquet .csv .tsv .json .jsonl .txt, or .gz)"
            )
    else:
        found = [path]
    files = [fs.unstrip_protocol(p) for p in found]
    for f in files:
        if input_format == "auto" and detect_format(f) is None:
            raise UserInputError(f"cannot tell the format of {f}; pass --input-format")
    return files


def iter_canonical_batches(options: IngestOptions) -> Iterator[pa.Table]:
    """Yield URL_LIST_SCHEMA tables of at most ``options.batch_size`` rows over all input files."""
    row_index = 0
    for file in list_input_files(options.urls, options.input_format):
        fmt = options.input_format if options.input_format != "auto" else detect_format(file)
        log.info("reading %s as %s", file, fmt)
        batch: list[tuple[ColumnMap | None, RawRow]] = []
        for pair in _iter_raw_rows(file, fmt, options):
            batch.append(pair)
            if len(batch) >= options.batch_size:
                yield _to_table(batch, file, row_index, options)
                row_index += len(batch)
                batch = []
        if batch:
            yield _to_table(batch, file, row_index, options)
            row_index += len(batch)


def _iter_raw_rows(
    file: str, fmt: str | None, options: IngestOptions
) -> Iterator[tuple[ColumnMap | None, RawRow]]:
    """Each input row with the column map that applies to it (None for rows that did not parse)."""
    try:
        if fmt == "parquet":
            yield from _read_parquet(file, options)
        elif fmt in ("csv", "tsv"):
            yield from _read_delimited(file, "," if fmt == "csv" else "\t", options)
        elif fmt == "jsonl":
            yield from _read_jsonl(file, options)
        elif fmt == "json":
            yield from _read_json(file, options)
        elif fmt == "txt":
            yield from _read_text(file, options)
        else:
            raise UserInputError(f"unsupported format {fmt!r} for {file}")
    except (OSError, EOFError, pa.ArrowException) as exc:
        # A file that cannot be read at all (corrupt gzip or parquet) stops the job before any
        # download: silently skipping part of the input would be worse.
        raise UserInputError(f"cannot read {file}: {exc}") from exc


# Byte-order marks of encodings that are not UTF-8 (UTF-32 first: its LE mark starts like UTF-16's).
_FOREIGN_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)


def _open_text(file: str) -> io.TextIOBase:
    binary = fsspec.open(file, "rb", compression="infer").open()
    head = binary.read(4)
    binary.seek(0)
    for bom, encoding in _FOREIGN_BOMS:
        if head.startswith(bom):
            binary.close()
            raise UserInputError(f"{file} is {encoding}-encoded; URL lists must be UTF-8 (convert it first)")
    # utf-8-sig drops the byte-order mark spreadsheet programs write, which would otherwise be
    # glued to the first column name. surrogateescape keeps undecodable bytes visible, so one
    # bad caption fails one row only.
    return io.TextIOWrapper(binary, encoding="utf-8-sig", errors="surrogateescape", newline="")


def _read_delimited(
    file: str, delimiter: str, options: IngestOptions
) -> Iterator[tuple[ColumnMap | None, RawRow]]:
    with _open_text(file) as text:
        reader = csv.reader(
            text, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE
        )
        first = _next_row(reader, file)
        if first is None:
            return
        has_header = options.header == "yes" or (
            options.header == "auto" and not any(looks_like_url(v) for v in first)
        )
        if has_header:
            names = [n.strip() for n in first]
            columns = resolve_columns(names, options, file)
            pending: list[str] | None = None
        else:
            names = [str(i) for i in range(len(first))]
            columns = resolve_columns(names, options, file, first_row=list(first))
            pending = first
        row_number = 0
        while True:
            # A quoted field may span lines: name them all, so an unclosed quote that swallowed
            # the following lines says which ones.
            first_line = reader.line_num + 1
            if pending is not None:
                fields, pending = pending, None
            else:
                try:
                    fields = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    row_number += 1
                    where = _lines(file, first_line, reader.line_num)
                    error = SampleError(ErrorClass.MALFORMED_ROW, f"{where}: {exc}")
                    yield columns, RawRow(row_number, None, error)
                    continue
            if not fields or fields == [""]:
                continue
            row_number += 1
            if len(fields) != len(names):
                where = _lines(file, first_line, reader.line_num)
                error = SampleError(
                    ErrorClass.MALFORMED_ROW, f"{where}: {len(fields)} fields, header has {len(names)}"
                )
                yield columns, RawRow(row_number, None, error)
                continue
            yield columns, RawRow(row_number, dict(zip(names, fields, strict=True)))


def _lines(file: str, first: int, last: int) -> str:
    return f"{file} line {last}" if last <= first else f"{file} lines {first}-{last}"


def _next_row(reader: Iterator[list[str]], file: str) -> list[str] | None:
    try:
        return next(reader)
    except StopIteration:
        return None
    except csv.Error as exc:
        raise UserInputError(f"{file}: cannot parse the first line: {exc}") from exc


def _read_jsonl(file: str, options: IngestOptions) -> Iterator[tuple[ColumnMap | None, RawRow]]:
    columns: ColumnMap | None = None
    with _open_text(file) as text:
        row_number = 0
        for line_number, line in enumerate(text, start=1):
            if not line.strip():
                continue
            row_number += 1
            try:
                obj = json.loads(line)
            except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
                error = SampleError(
                    ErrorClass.MALFORMED_ROW, f"{file} line {line_number}: invalid JSON: {exc}"
                )
                yield columns, RawRow(row_number, None, error)
                continue
            if not isinstance(obj, dict):
                error = SampleError(ErrorClass.MALFORMED_ROW, f"{file} line {line_number}: not a JSON object")
                yield columns, RawRow(row_number, None, error)
                continue
            if columns is None:
                columns = resolve_columns(list(obj), options, file)
            yield columns, RawRow(row_number, obj)


_JSON_CHUNK = 1 << 20  # characters read at a time from a JSON array


def _read_json(file: str, options: IngestOptions) -> Iterator[tuple[ColumnMap | None, RawRow]]:
    """A JSON array of objects, as img2dataset's ``json`` input (pandas.read_json) reads it, but
    streamed one element at a time; a file whose first character is not ``[`` is JSON lines."""
    with _open_text(file) as text:
        head = text.read(_JSON_CHUNK)
        if head.lstrip().startswith("["):
            yield from _json_array_rows(file, options, text, head)
            return
    yield from _read_jsonl(file, options)


def _json_array_rows(
    file: str, options: IngestOptions, text: io.TextIOBase, head: str
) -> Iterator[tuple[ColumnMap | None, RawRow]]:
    columns: ColumnMap | None = None
    for row_number, value in enumerate(_array_elements(text, head, file), start=1):
        if not isinstance(value, dict):
            error = SampleError(ErrorClass.MALFORMED_ROW, f"{file} element {row_number}: not a JSON object")
            yield columns, RawRow(row_number, None, error)
            continue
        if columns is None:
            columns = resolve_columns(list(value), options, file)
        yield columns, RawRow(row_number, value)


def _array_elements(text: io.TextIOBase, buffer: str, file: str) -> Iterator[object]:
    """The elements of the JSON array that ``buffer`` (then ``text``) holds, decoded one by one.

    A malformed array cannot be resynchronised, so it stops the job naming the element, as an
    unreadable file does.
    """
    decoder = json.JSONDecoder()
    eof = False
    pos = buffer.index("[") + 1
    expect_value = True  # after "[" or ",": an element (or "]" right after "[")
    count = 0

    def more() -> bool:
        nonlocal buffer, pos, eof
        chunk = text.read(_JSON_CHUNK)
        buffer, pos = buffer[pos:] + chunk, 0
        eof = not chunk
        return bool(chunk)

    while True:
        while pos < len(buffer) and buffer[pos] in " \t\r\n":
            pos += 1
        if pos >= len(buffer):
            if more():
                continue
            raise UserInputError(f"{file}: the JSON array ends without ']' after {count} elements")
        char = buffer[pos]
        if char == "]" and (count == 0 or not expect_value):
            return
        if not expect_value:
            if char != ",":
                raise UserInputError(f"{file}: expected ',' or ']' after JSON array element {count}")
            pos += 1
            expect_value = True
            continue
        try:
            value, end = decoder.raw_decode(buffer, pos)
        except (ValueError, RecursionError) as exc:
            if not eof and more():
                continue  # the element may continue in the next chunk
            raise UserInputError(f"{file}: invalid JSON in array element {count + 1}: {exc}") from exc
        if end >= len(buffer) and not eof and more():
            continue  # a number or literal cut at the chunk's end: decode it again, whole
        pos = end
        count += 1
        expect_value = False
        yield value


def _read_text(file: str, options: IngestOptions) -> Iterator[tuple[ColumnMap | None, RawRow]]:
    columns = ColumnMap("url", None, ())
    with _open_text(file) as text:
        row_number = 0
        for line in text:
            if not line.strip():
                continue
            row_number += 1
            yield columns, RawRow(row_number, {"url": line.strip()})


def _read_parquet(file: str, options: IngestOptions) -> Iterator[tuple[ColumnMap | None, RawRow]]:
    with fsspec.open(file, "rb") as handle:
        parquet = pq.ParquetFile(handle)
        names = parquet.schema_arrow.names
        columns = resolve_columns(names, options, file)
        wanted = [c for c in (columns.url, columns.caption, *columns.keep) if c is not None]
        wanted = list(dict.fromkeys(wanted))
        row_number = 0
        for batch in parquet.iter_batches(batch_size=options.batch_size, columns=wanted):
            values = {name: _column_values(batch.column(name)) for name in wanted}
            for i in range(batch.num_rows):
                row_number += 1
                yield columns, RawRow(row_number, {name: values[name][i] for name in wanted})


def _column_values(array: pa.Array) -> list[object]:
    # Strings are read as bytes and decoded per value: one invalid UTF-8 caption must not
    # fail the whole batch.
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        array = array.cast(pa.large_binary())
    if pa.types.is_binary(array.type) or pa.types.is_large_binary(array.type):
        return [None if v is None else v.decode("utf-8", "surrogateescape") for v in array.to_pylist()]
    return array.to_pylist()


def _to_table(
    rows: list[tuple[ColumnMap | None, RawRow]], file: str, first_index: int, options: IngestOptions
) -> pa.Table:
    out: dict[str, list[object]] = {f.name: [] for f in URL_LIST_SCHEMA}
    for offset, (columns, raw) in enumerate(rows):
        url, caption, extra, error = _canonical(raw, columns, options, file)
        out["uid"].append(make_uid(url or f"{file}#{raw.source_row}", caption))
        out["row_index"].append(first_index + offset)
        out["url"].append(url)
        out["caption"].append(caption)
        out["source_file"].append(file)
        out["source_row"].append(raw.source_row)
        out["extra"].append(extra)
        out["ingest_error"].append(error.error_class.value if error else None)
        out["ingest_message"].append(error.message if error else None)
    return pa.table(out, schema=URL_LIST_SCHEMA)


def _canonical(
    raw: RawRow, columns: ColumnMap | None, options: IngestOptions, file: str
) -> tuple[str | None, str | None, str | None, SampleError | None]:
    """Validate one raw row: (normalised url, caption, extra JSON, error or None)."""
    if raw.error is not None or raw.values is None or columns is None:
        return None, None, None, raw.error
    where = f"{file} row {raw.source_row}"
    values = raw.values
    url_value = values.get(columns.url)
    caption_value = values.get(columns.caption) if columns.caption is not None else None
    caption = None if caption_value is None else _text(caption_value)
    extra = None
    if columns.keep:
        extra = json.dumps({k: _jsonable(values.get(k)) for k in columns.keep}, ensure_ascii=False)
    safe_caption = _printable(caption)
    if url_value is None or (isinstance(url_value, str) and not url_value.strip()):
        return None, safe_caption, extra, SampleError(ErrorClass.MISSING_URL, f"{where}: no URL")
    try:
        url_text = _text(url_value)
        if _has_surrogates(url_text):
            raise SampleError(ErrorClass.INVALID_URL, "URL is not valid UTF-8")
        url = normalise_url(url_text)
    except SampleError as exc:
        return (
            _printable(_text(url_value)),
            safe_caption,
            extra,
            SampleError(exc.error_class, f"{where}: {exc.message}"),
        )
    if caption is not None and _has_surrogates(caption):
        return (
            url,
            safe_caption,
            extra,
            SampleError(ErrorClass.NON_UTF8_CAPTION, f"{where}: caption is not valid UTF-8"),
        )
    if columns.caption is not None and not options.allow_empty_caption and not (caption or "").strip():
        return (
            url,
            caption,
            extra,
            SampleError(
                ErrorClass.EMPTY_CAPTION,
                f"{where}: empty caption (pass --allow-empty-caption to keep such rows)",
            ),
        )
    return url, caption.strip() if caption else caption, extra, None


def _text(value: object) -> str:
    return value if isinstance(value, str) else str(value)


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _printable(text: str | None) -> str | None:
    """Undecodable bytes shown as U+FFFD, so the text can be stored as UTF-8."""
    if text is None:
        return None
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _jsonable(value: object) -> object:
    if isinstance(value, str):
        return _printable(value)
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return str(value)
