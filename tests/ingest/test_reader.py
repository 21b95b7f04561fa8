"""Reading every supported URL list format into canonical rows."""

from __future__ import annotations

import gzip
import json
import tracemalloc
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.errors import UserInputError
from pipeline.ingest import IngestOptions, iter_canonical_batches
from schemas.url_list import URL_LIST_SCHEMA

URL1 = "http://img.test/1.jpg"
URL2 = "https://img.test/2.png"


def read_all(urls: Path | str, **kwargs: object) -> list[dict]:
    tables = list(iter_canonical_batches(IngestOptions(urls=str(urls), **kwargs)))
    for table in tables:
        assert table.schema.equals(URL_LIST_SCHEMA, check_metadata=False)
    return [row for t in tables for row in t.to_pylist()]


def good(rows: list[dict]) -> list[tuple[str, str]]:
    return [(r["url"], r["caption"]) for r in rows if r["ingest_error"] is None]


def test_laion_parquet_columns_are_found(tmp_path: Path) -> None:
    path = tmp_path / "laion.parquet"
    pq.write_table(pa.table({"URL": [URL1, URL2], "TEXT": ["a cat", "a dog"], "WIDTH": [10, 20]}), path)
    rows = read_all(path, keep_cols=("WIDTH",))
    assert good(rows) == [(URL1, "a cat"), (URL2, "a dog")]
    assert [json.loads(r["extra"]) for r in rows] == [{"WIDTH": 10}, {"WIDTH": 20}]
    assert [r["row_index"] for r in rows] == [0, 1]
    assert [r["source_row"] for r in rows] == [1, 2]


def test_cc3m_tsv_without_header(tmp_path: Path) -> None:
    path = tmp_path / "cc3m.tsv"
    path.write_text(f"a cat\t{URL1}\na dog\t{URL2}\n")
    assert good(read_all(path)) == [(URL1, "a cat"), (URL2, "a dog")]


def test_tsv_with_header_and_named_columns(tmp_path: Path) -> None:
    path = tmp_path / "list.tsv"
    path.write_text(f"link\tdesc\n{URL1}\ta cat\n")
    assert good(read_all(path, url_col="link", caption_col="desc")) == [(URL1, "a cat")]


def test_csv_quoted_fields_gzip(tmp_path: Path) -> None:
    path = tmp_path / "list.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write(f'url,caption\n{URL1},"a cat, sitting"\n"{URL2}","a ""dog"""\n')
    assert good(read_all(path)) == [(URL1, "a cat, sitting"), (URL2, 'a "dog"')]


def test_jsonl_and_text_and_folder(tmp_path: Path) -> None:
    folder = tmp_path / "lists"
    folder.mkdir()
    (folder / "a.jsonl").write_text(json.dumps({"url": URL1, "caption": "a cat"}) + "\n\n")
    (folder / "b.txt").write_text(f"{URL2}\n")
    (folder / "_SUCCESS").write_text("")
    rows = read_all(folder)
    assert good(rows) == [(URL1, "a cat"), (URL2, None)]
    assert [r["row_index"] for r in rows] == [0, 1]
    assert rows[0]["source_file"].endswith("a.jsonl") and rows[1]["source_file"].endswith("b.txt")


def test_bad_rows_are_kept_with_reasons(tmp_path: Path) -> None:
    path = tmp_path / "bad.tsv"
    lines = [
        b"caption\turl",
        b"good\t" + URL1.encode(),
        b"no url\t",
        b"ftp\tftp://img.test/x.jpg",
        b"broken\thttp//img.test/x.jpg",
        b"caf\xe9 latin-1\t" + URL2.encode(),
        b"\t" + URL2.encode(),
        b"too\tmany\tfields",
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    rows = read_all(path)
    assert [r["ingest_error"] for r in rows] == [
        None,
        "missing_url",
        "unsupported_scheme",
        "invalid_url",
        "non_utf8_caption",
        "empty_caption",
        "malformed_row",
    ]
    # Every message names the file and the row.
    for row in rows[1:]:
        assert str(path) in row["ingest_message"]
    assert "row 5" in rows[4]["ingest_message"]
    assert rows[4]["caption"] == "caf\ufffd latin-1"  # stored readable, flagged as bad


def test_empty_caption_allowed_on_request(tmp_path: Path) -> None:
    path = tmp_path / "l.tsv"
    path.write_text(f"caption\turl\n\t{URL1}\n")
    assert read_all(path, allow_empty_caption=True)[0]["ingest_error"] is None


def test_parquet_with_invalid_utf8_caption_fails_one_row(tmp_path: Path) -> None:
    path = tmp_path / "bin.parquet"
    pq.write_table(
        pa.table({"url": [URL1, URL2], "caption": pa.array([b"ok", b"\xff\xfe"], pa.binary())}), path
    )
    assert [r["ingest_error"] for r in read_all(path)] == [None, "non_utf8_caption"]


def test_malformed_json_lines_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    path.write_text(json.dumps({"url": URL1, "caption": "x"}) + "\n{not json\n[1, 2]\n")
    rows = read_all(path)
    assert [r["ingest_error"] for r in rows] == [None, "malformed_row", "malformed_row"]
    assert "line 2" in rows[1]["ingest_message"]


def test_missing_column_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "l.parquet"
    pq.write_table(pa.table({"image": [URL1], "TEXT": ["x"]}), path)
    with pytest.raises(UserInputError, match=r"l\.parquet.*no URL column.*image"):
        read_all(path)
    with pytest.raises(UserInputError, match="--keep-cols"):
        read_all(path, url_col="image", keep_cols=("nope",))


def test_unreadable_inputs_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="does not exist"):
        read_all(tmp_path / "missing.parquet")
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(UserInputError, match="corrupt.parquet"):
        read_all(corrupt)
    unknown = tmp_path / "list.xyz"
    unknown.write_text(URL1)
    with pytest.raises(UserInputError, match="--input-format"):
        read_all(unknown)
    assert good(read_all(unknown, input_format="txt")) == [(URL1, None)]


def _peak_memory_reading(path: Path) -> int:
    tracemalloc.start()
    count = 0
    for table in iter_canonical_batches(IngestOptions(urls=str(path), batch_size=1000)):
        count += table.num_rows
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def test_memory_does_not_grow_with_list_size(tmp_path: Path) -> None:
    def write(path: Path, rows: int) -> Path:
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            for i in range(rows):
                handle.write(f"caption number {i}\thttp://img.test/{i}.jpg\n")
        return path

    small = _peak_memory_reading(write(tmp_path / "small.tsv.gz", 10_000))
    large = _peak_memory_reading(write(tmp_path / "large.tsv.gz", 100_000))
    # Ten times the rows, about the same peak: only one batch is held at a time.
    assert large < small * 1.5


def test_jsonl_errors_before_the_first_object_do_not_change_its_columns(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    lines = [
        "{broken",
        json.dumps({"URL": URL1, "TEXT": "a cat"}),
        "{broken again",
        json.dumps({"URL": URL2, "TEXT": "b"}),
    ]
    path.write_text("\n".join(lines) + "\n")
    rows = read_all(path, batch_size=3)
    assert [r["ingest_error"] for r in rows] == ["malformed_row", None, "malformed_row", None]
    assert good(rows) == [(URL1, "a cat"), (URL2, "b")]
