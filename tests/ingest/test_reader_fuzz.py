"""Hostile URL lists: every input row comes out exactly once, good or counted bad, or the file is refused.

Two invariants are checked on generated inputs of every format:

* no crash: reading raises nothing but ``UserInputError`` naming the file;
* no silent loss: every input row (record) is one output row, either good or carrying an
  ``ingest_error`` class and a message that names the file.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pipeline.errors import ErrorClass, SampleError, UserInputError
from pipeline.ingest import IngestOptions, iter_canonical_batches
from pipeline.ingest.reader import _CSV_FIELD_LIMIT
from pipeline.uid import normalise_url
from schemas.url_list import URL_LIST_SCHEMA

FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
INGEST_CLASSES = {e.value for e in ErrorClass}

# Pieces that break naive parsers: separators, quotes, line breaks, NUL, BOM, non-ASCII.
NASTY = st.sampled_from(
    [",", "\t", '"', "'", "\n", "\r", "\r\n", "\x00", "\ufeff", "\\", " ", "é", "漢", "\U0001f600", "%", "#"]
)
TEXT = st.lists(st.one_of(st.text(max_size=8), NASTY), max_size=6).map("".join)
URLS = st.one_of(
    st.builds(lambda a, b: f"http://img.test/{a}{b}.jpg", st.integers(0, 10**6), TEXT),
    st.builds(lambda t: f"HTTPS://Img.Test:8443/{t}", TEXT),
    st.sampled_from(["", " ", "ftp://img.test/a.jpg", "http//img.test/a", "http://", "http://[::1/x"]),
    st.sampled_from(["http://a:99999/x", "http://user:pw@img.test/x", "javascript:alert(1)", "mailto:x@y"]),
    TEXT,
)
# Occasionally a field over the CSV field limit (1 MiB): a counted bad row in CSV/TSV.
HUGE = st.just("x" * (_CSV_FIELD_LIMIT + 10))
CAPTIONS = st.one_of(TEXT, TEXT, TEXT, HUGE)
ROWS = st.lists(st.tuples(URLS, CAPTIONS), max_size=25)


def read_all(path: Path, **options: object) -> list[dict]:
    """All canonical rows of ``path``; checks the schema and that only UserInputError escapes."""
    tables = list(iter_canonical_batches(IngestOptions(urls=str(path), batch_size=7, **options)))
    for table in tables:
        assert table.schema.equals(URL_LIST_SCHEMA, check_metadata=False)
    return [row for table in tables for row in table.to_pylist()]


def read_or_refuse(path: Path, **options: object) -> list[dict] | None:
    """Rows, or None when the file is refused with a UserInputError that names it."""
    try:
        return read_all(path, **options)
    except UserInputError as exc:
        assert path.name in str(exc), str(exc)
        return None


def expected(url: str, caption: str | None) -> tuple[str, str | None] | str:
    """The good (url, caption) a valid row must give, or the reason class name if it is bad."""
    try:
        normalised = normalise_url(url)
    except SampleError as exc:
        return exc.error_class.value
    if caption is not None and not caption.strip():
        return ErrorClass.EMPTY_CAPTION.value
    return normalised, caption.strip() if caption is not None else None


def check_accounting(rows: list[dict], path: Path, count: int) -> None:
    """Every input row exactly once, in order, each good or bad with a reason naming the file."""
    assert len(rows) == count
    assert [r["row_index"] for r in rows] == list(range(count))
    assert [r["source_row"] for r in rows] == list(range(1, count + 1))
    assert len({r["row_index"] for r in rows}) == count
    for row in rows:
        if row["ingest_error"] is None:
            assert row["url"] and row["ingest_message"] is None
            normalise_url(row["url"])  # a good row's URL is valid as stored
        else:
            assert row["ingest_error"] in INGEST_CLASSES
            assert str(path.name) in row["ingest_message"], row["ingest_message"]


def check_against_input(rows: list[dict], records: list[tuple[str, str]], big_fields_are_bad: bool) -> None:
    for row, (url, caption) in zip(rows, records, strict=True):
        if big_fields_are_bad and max(len(url), len(caption)) > _CSV_FIELD_LIMIT:
            assert row["ingest_error"] == ErrorClass.MALFORMED_ROW.value
            continue
        want = expected(url, caption)
        got = (row["url"], row["caption"]) if row["ingest_error"] is None else row["ingest_error"]
        assert got == want, (url, caption, row["ingest_message"])


def _csv_bytes(records: list[tuple[str, str]]) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(["url", "caption"])
    writer.writerows(records)
    return out.getvalue().encode("utf-8")


@FUZZ
@given(records=ROWS, gz=st.booleans())
def test_csv_fields_with_separators_quotes_and_line_breaks_round_trip(
    records: list[tuple[str, str]], gz: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("list.csv.gz" if gz else "list.csv")
        data = _csv_bytes(records)
        path.write_bytes(gzip.compress(data) if gz else data)
        rows = read_all(path)
        check_accounting(rows, path, len(records))
        check_against_input(rows, records, big_fields_are_bad=True)


@FUZZ
@given(records=ROWS)
def test_jsonl_round_trips_any_text(records: list[tuple[str, str]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "list.jsonl"
        path.write_text("".join(json.dumps({"url": u, "caption": c}) + "\n" for u, c in records))
        rows = read_all(path)
        check_accounting(rows, path, len(records))
        check_against_input(rows, records, big_fields_are_bad=False)


@FUZZ
@given(records=ROWS)
def test_parquet_round_trips_any_text(records: list[tuple[str, str]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "list.parquet"
        table = pa.table(
            {"URL": [u for u, _ in records], "TEXT": [c for _, c in records]},
            schema=pa.schema([("URL", pa.string()), ("TEXT", pa.string())]),
        )
        pq.write_table(table, path, row_group_size=5)
        rows = read_all(path)
        check_accounting(rows, path, len(records))
        check_against_input(rows, records, big_fields_are_bad=False)


LINE_TEXT = TEXT.map(lambda t: t.replace("\n", " ").replace("\r", " "))


@FUZZ
@given(
    lines=st.lists(
        st.one_of(
            st.tuples(LINE_TEXT, URLS.map(lambda u: u.replace("\n", "").replace("\r", ""))).map("\t".join),
            LINE_TEXT,  # one field, or several when the text holds tabs
        ),
        max_size=25,
    )
)
def test_tsv_lines_are_rows_whatever_they_hold(lines: list[str]) -> None:
    # CC3M layout: no header, no quoting, one record per line; a tab inside a field makes the
    # line a counted malformed row instead of shifting the columns.
    lines = [line for line in lines if line.strip(" ")]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "list.tsv"
        head = "a caption\thttp://img.test/first.jpg"
        path.write_text("\n".join([head, *lines]) + "\n", encoding="utf-8", newline="")
        rows = read_all(path)
        check_accounting(rows, path, 1 + len(lines))
        for row, line in zip(rows, [head, *lines], strict=True):
            fields = line.split("\t")
            if len(fields) != 2:
                assert row["ingest_error"] == ErrorClass.MALFORMED_ROW.value, line
            else:
                want = expected(fields[1], fields[0])
                got = (row["url"], row["caption"]) if row["ingest_error"] is None else row["ingest_error"]
                assert got == want, (line, row["ingest_message"])


def _lines(data: bytes) -> list[str]:
    """Lines as the text readers see them: universal line breaks, blank lines ignored."""
    text = data.decode("utf-8", "surrogateescape").removeprefix("\ufeff")
    return [line for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n") if line.strip()]


BYTES = st.one_of(
    st.binary(max_size=400),
    st.lists(
        st.one_of(st.binary(max_size=20), st.sampled_from([b"\n", b"\r", b"{", b'"', b"\xff", b"\t"]))
    ).map(b"".join),
    # Another encoding than UTF-8.
    st.builds(
        lambda text, enc: text.encode(enc, "replace"),
        st.text(max_size=80).map(lambda t: f"url,caption\nhttp://img.test/{t}.jpg,{t}\n"),
        st.sampled_from(["latin-1", "utf-16", "utf-16-le", "utf-32", "cp1252", "shift_jis"]),
    ),
)


@FUZZ
@given(data=BYTES, name=st.sampled_from(["l.csv", "l.tsv", "l.jsonl", "l.txt", "l.parquet", "l.csv.gz"]))
def test_arbitrary_bytes_never_crash_or_lose_rows(data: bytes, name: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        rows = read_or_refuse(path)
        if rows is None:
            return
        check_accounting(rows, path, len(rows))
        if name.endswith((".txt", ".jsonl")):
            assert len(rows) == len(_lines(data))


@FUZZ
@given(
    url_type=st.sampled_from(["string", "large_string", "binary", "int64", "list", "struct", "null"]),
    values=st.lists(st.one_of(st.none(), st.binary(max_size=30), URLS.map(str.encode)), max_size=20),
)
def test_parquet_columns_of_any_type_give_counted_rows(url_type: str, values: list[bytes | None]) -> None:
    arrays: dict[str, Callable[[], pa.Array]] = {
        "string": lambda: pa.array([v.decode("utf-8", "replace") if v is not None else None for v in values]),
        "large_string": lambda: pa.array(
            [v.decode("utf-8", "replace") if v is not None else None for v in values], pa.large_string()
        ),
        "binary": lambda: pa.array(values, pa.binary()),
        "int64": lambda: pa.array([len(v) if v is not None else None for v in values], pa.int64()),
        "list": lambda: pa.array([[len(v)] if v is not None else None for v in values]),
        "struct": lambda: pa.array([{"a": len(v)} if v is not None else None for v in values]),
        "null": lambda: pa.nulls(len(values)),
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "typed.parquet"
        pq.write_table(pa.table({"url": arrays[url_type](), "caption": ["c"] * len(values)}), path)
        rows = read_all(path)
        check_accounting(rows, path, len(values))
        if url_type not in ("string", "large_string", "binary"):
            assert all(r["ingest_error"] is not None for r in rows)


@FUZZ
@given(
    cut=st.integers(0, 2000), flips=st.lists(st.tuples(st.integers(0, 2000), st.integers(1, 255)), max_size=4)
)
def test_damaged_parquet_is_refused_or_counted(cut: int, flips: list[tuple[int, int]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        good = Path(tmp) / "good.parquet"
        table = pa.table({"url": [f"http://img.test/{i}.jpg" for i in range(50)], "caption": ["c"] * 50})
        pq.write_table(table, good, row_group_size=10)
        data = bytearray(good.read_bytes())
        for at, xor in flips:
            data[at % len(data)] ^= xor
        path = Path(tmp) / "damaged.parquet"
        path.write_bytes(bytes(data[: max(0, len(data) - cut)]) if cut else bytes(data))
        rows = read_or_refuse(path)
        if rows is not None:
            check_accounting(rows, path, len(rows))


# Known hostile inputs, each with what must come out: rows (error class or None), or a refusal.
CASES = [
    pytest.param(b"url,caption\nhttp://img.test/a,b.jpg,a cat\n", ["malformed_row"], id="comma-in-url"),
    pytest.param(b'url,caption\n"http://img.test/a,b.jpg",a cat\n', [None], id="quoted-comma-in-url"),
    pytest.param(
        b"a dog\thttp://img.test/0.jpg\na cat\thttp://img.test/a\tb.jpg\n",
        [None, "malformed_row"],
        id="tab-in-url",
    ),
    pytest.param(b"\xef\xbb\xbfurl,caption\nhttp://img.test/a.jpg,a cat\n", [None], id="utf8-bom"),
    pytest.param(
        b"url,caption\nhttp://img.test/1.jpg,caf\xe9\nhttp://img.test/2.jpg,ok\n",
        ["non_utf8_caption", None],
        id="latin1-caption",
    ),
    pytest.param(
        b'url,caption\n"http://img.test/1.jpg,c\nhttp://img.test/2.jpg,d\n',
        ["malformed_row"],
        id="unclosed-quote",
    ),
    pytest.param(b"url,caption\nhttp://img.test/1.jpg,c\x00d\n", [None], id="nul-in-caption"),
    pytest.param(
        b"url,url,caption\nhttp://img.test/1.jpg,http://img.test/2.jpg,c\n", "url", id="duplicate-column"
    ),
    pytest.param(b"image,caption\nhttp://img.test/1.jpg,c\n", "no URL column", id="missing-url-column"),
    pytest.param("url,caption\nhttp://img.test/1.jpg,c\n".encode("utf-16"), "UTF-16", id="utf16"),
    pytest.param("url,caption\nhttp://img.test/1.jpg,c\n".encode("utf-32"), "UTF-32", id="utf32"),
]


@pytest.mark.parametrize(("data", "want"), CASES)
def test_known_hostile_csv(tmp_path: Path, data: bytes, want: list[str | None] | str) -> None:
    path = tmp_path / ("list.tsv" if b"\t" in data else "list.csv")
    path.write_bytes(data)
    if isinstance(want, str):
        with pytest.raises(UserInputError, match=want) as info:
            read_all(path)
        assert path.name in str(info.value)
        return
    rows = read_all(path)
    assert [r["ingest_error"] for r in rows] == want, [r["ingest_message"] for r in rows]
    check_accounting(rows, path, len(want))


def test_unclosed_quote_names_the_lines_it_swallowed(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_bytes(
        b'url,caption\nhttp://img.test/0.jpg,a\n"http://img.test/1.jpg,c\nhttp://img.test/2.jpg,d\n'
    )
    rows = read_all(path)
    assert [r["ingest_error"] for r in rows] == [None, "malformed_row"]
    assert "lines 3-4" in rows[1]["ingest_message"]


def test_deeply_nested_json_is_a_bad_row(tmp_path: Path) -> None:
    path = tmp_path / "list.jsonl"
    deep = '{"url": ' + "[" * 100_000 + "]" * 100_000 + ', "caption": "x"}'
    path.write_text(json.dumps({"url": "http://img.test/1.jpg", "caption": "c"}) + "\n" + deep + "\n")
    rows = read_all(path)
    assert [r["ingest_error"] for r in rows] == [None, "malformed_row"]
    assert "line 2" in rows[1]["ingest_message"]


def test_duplicate_parquet_column_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "dup.parquet"
    columns = [pa.array(["http://img.test/1.jpg"]), pa.array(["c"]), pa.array(["http://img.test/2.jpg"])]
    pq.write_table(pa.table(columns, names=["url", "caption", "url"]), path)
    with pytest.raises(UserInputError, match=r"dup\.parquet.*'url'.*2 times"):
        read_all(path)


def test_missing_columns_in_every_format_name_the_file(tmp_path: Path) -> None:
    files = {
        "a.jsonl": b'{"image": "http://img.test/1.jpg", "caption": "c"}\n',
        "a.csv": b"image,caption\nhttp://img.test/1.jpg,c\n",
        "a.tsv": b"image\tcaption\nhttp://img.test/1.jpg\tc\n",
    }
    pq.write_table(pa.table({"image": ["http://img.test/1.jpg"]}), tmp_path / "a.parquet")
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    for name in [*files, "a.parquet"]:
        with pytest.raises(UserInputError, match="no URL column") as info:
            read_all(tmp_path / name)
        assert name in str(info.value)
        with pytest.raises(UserInputError, match="caption column 'nope' not found"):
            read_all(tmp_path / name, url_col="image", caption_col="nope")


def test_huge_fields_fail_one_row_only(tmp_path: Path) -> None:
    huge = "x" * (_CSV_FIELD_LIMIT + 1)
    for name, sep in (("h.csv", ","), ("h.tsv", "\t")):
        path = tmp_path / name
        path.write_text(f"url{sep}caption\nhttp://img.test/1.jpg{sep}{huge}\nhttp://img.test/2.jpg{sep}ok\n")
        rows = read_all(path)
        assert [r["ingest_error"] for r in rows] == ["malformed_row", None]
        assert "field larger than field limit" in rows[0]["ingest_message"]
    # Formats without a field limit keep a huge caption.
    path = tmp_path / "h.jsonl"
    path.write_text(json.dumps({"url": "http://img.test/1.jpg", "caption": huge}) + "\n")
    assert read_all(path)[0]["ingest_error"] is None


@example(n=0)
@FUZZ
@given(n=st.integers(0, 40))
def test_row_accounting_holds_across_batches_and_files(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "lists"
        folder.mkdir()
        (folder / "a.txt").write_text("".join(f"http://img.test/{i}.jpg\n" for i in range(n)))
        (folder / "b.jsonl").write_text("{bad\n" * (n % 3))
        rows = read_all(folder)
        assert [r["row_index"] for r in rows] == list(range(n + n % 3))
        assert sum(r["ingest_error"] is None for r in rows) == n
