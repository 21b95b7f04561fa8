"""img2dataset's ``json`` input: a JSON array of objects, streamed element by element."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from pipeline.errors import UserInputError
from pipeline.ingest import IngestOptions, iter_canonical_batches
from pipeline.ingest import reader as reader_module
from pipeline.ingest.options import input_format

URL1 = "http://img.test/1.jpg"
URL2 = "https://img.test/2.png"


def read_all(urls: Path, **kwargs: object) -> list[dict]:
    return [
        row for t in iter_canonical_batches(IngestOptions(urls=str(urls), **kwargs)) for row in t.to_pylist()
    ]


def good(rows: list[dict]) -> list[tuple[str, str]]:
    return [(r["url"], r["caption"]) for r in rows if r["ingest_error"] is None]


def test_json_array_of_objects(tmp_path: Path) -> None:
    path = tmp_path / "list.json"
    rows = [{"url": URL1, "caption": "a cat", "w": 3}, {"url": URL2, "caption": "a [dog], {x}", "w": 4}]
    path.write_text(json.dumps(rows, indent=2))
    read = read_all(path, keep_cols=("w",))
    assert good(read) == [(URL1, "a cat"), (URL2, "a [dog], {x}")]
    assert [json.loads(r["extra"]) for r in read] == [{"w": 3}, {"w": 4}]
    assert [r["source_row"] for r in read] == [1, 2]
    # The same file named otherwise, with img2dataset's format name.
    other = tmp_path / "list.data"
    other.write_text(path.read_text())
    assert good(read_all(other, input_format="json")) == good(read)


def test_json_array_elements_cross_chunk_boundaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader_module, "_JSON_CHUNK", 7)  # every element spans several reads
    path = tmp_path / "list.json.gz"
    rows = [{"url": f"http://img.test/{i}.jpg", "caption": f"caption {i}", "n": 10**i} for i in range(12)]
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("\ufeff" + json.dumps(rows))  # a byte-order mark, as editors write one
    read = read_all(path, keep_cols=("n",))
    assert good(read) == [(r["url"], r["caption"]) for r in rows]
    assert [json.loads(r["extra"])["n"] for r in read] == [10**i for i in range(12)]


def test_json_array_non_objects_are_malformed_rows(tmp_path: Path) -> None:
    path = tmp_path / "list.json"
    path.write_text(json.dumps([{"url": URL1, "caption": "a"}, 42, ["x"], {"url": URL2, "caption": "b"}]))
    read = read_all(path)
    assert good(read) == [(URL1, "a"), (URL2, "b")]
    assert [r["ingest_error"] for r in read] == [None, "malformed_row", "malformed_row", None]
    assert "element 2: not a JSON object" in read[1]["ingest_message"]


def test_json_file_of_lines_is_still_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "list.json"
    path.write_text(f'{{"url": "{URL1}", "caption": "a"}}\n{{"url": "{URL2}", "caption": "b"}}\n')
    assert good(read_all(path)) == [(URL1, "a"), (URL2, "b")]


def test_empty_array(tmp_path: Path) -> None:
    path = tmp_path / "list.json"
    path.write_text(" [ ] ")
    assert read_all(path) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f'[{{"url": "{URL1}"}}, {{"url": ', "invalid JSON in array element 2"),
        (f'[{{"url": "{URL1}"}} {{"url": "{URL2}"}}]', "expected ',' or ']' after JSON array element 1"),
        (f'[{{"url": "{URL1}"}},', "ends without ']' after 1 elements"),
        (f'[{{"url": "{URL1}"}},]', "invalid JSON in array element 2"),
    ],
)
def test_broken_array_stops_with_the_file_and_element_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "list.json"
    path.write_text(text)
    with pytest.raises(UserInputError, match=message) as caught:
        read_all(path)
    assert str(path) in str(caught.value)


def test_img2dataset_format_names() -> None:
    assert input_format("csv.gz") == "csv"
    assert input_format("JSON") == "json"
    assert input_format("jsonl.gz") == "jsonl"
    with pytest.raises(ValueError, match="expected one of"):
        input_format("tfrecord")
