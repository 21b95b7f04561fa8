"""Cutting the URL list into input shards, resumably."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.dataset import Dataset
from pipeline.download.input_shards import prepare_input_shards, read_input_shard
from pipeline.errors import UserInputError
from pipeline.ingest import IngestOptions


def write_list(path: Path, rows: int) -> Path:
    path.write_text("".join(f"caption {i}\thttp://img.test/{i}.jpg\n" for i in range(rows)))
    return path


def test_fixed_size_shards_cover_every_row(tmp_path: Path) -> None:
    urls = write_list(tmp_path / "l.tsv", 25)
    dataset = Dataset(str(tmp_path / "ds"))
    manifest = prepare_input_shards(dataset, IngestOptions(urls=str(urls), batch_size=7), 10)
    assert manifest["shard_count"] == 3 and manifest["rows"] == 25
    indices = [read_input_shard(dataset, s).column("row_index").to_pylist() for s in range(3)]
    assert indices == [list(range(0, 10)), list(range(10, 20)), list(range(20, 25))]


def test_rerun_reuses_and_a_changed_list_is_refused(tmp_path: Path) -> None:
    urls = write_list(tmp_path / "l.tsv", 5)
    dataset = Dataset(str(tmp_path / "ds"))
    first = prepare_input_shards(dataset, IngestOptions(urls=str(urls)), 10)
    shard = tmp_path / "ds" / "_input" / "00000.parquet"
    stamp = shard.stat().st_mtime_ns
    assert prepare_input_shards(dataset, IngestOptions(urls=str(urls)), 10) == first
    assert shard.stat().st_mtime_ns == stamp  # not rewritten
    write_list(urls, 6)
    with pytest.raises(UserInputError, match="different URL list"):
        prepare_input_shards(dataset, IngestOptions(urls=str(urls)), 10)
    with pytest.raises(UserInputError, match="different URL list"):
        prepare_input_shards(dataset, IngestOptions(urls=str(write_list(urls, 5))), 3)


def test_interrupted_ingest_is_redone(tmp_path: Path) -> None:
    urls = write_list(tmp_path / "l.tsv", 5)
    dataset = Dataset(str(tmp_path / "ds"))
    prepare_input_shards(dataset, IngestOptions(urls=str(urls)), 2)
    (tmp_path / "ds" / "_input" / "_manifest.json").unlink()  # as if killed before the manifest
    (tmp_path / "ds" / "_input" / "00002.parquet.tmp.dead").write_bytes(b"partial")
    manifest = prepare_input_shards(dataset, IngestOptions(urls=str(urls)), 2)
    assert manifest["shard_count"] == 3
    assert not list((tmp_path / "ds" / "_input").glob("*.tmp.*"))
