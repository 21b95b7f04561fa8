"""Raw shards committed through the shard runner: tar, parquet, then the stats marker."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.dataset import Dataset
from pipeline.runner import ShardCommit, run_shard
from pipeline.shards.raw_writer import RawShardWriter, SampleRecord, raw_row
from pipeline.shards.tar_writer import TarWriter
from schemas import RAW_SHARD_SCHEMA, check_schema
from testkit.raw_shards import write_raw_shard


def row(uid: str, index: int, status: str = "success", **extra: object) -> dict:
    base = {f.name: None for f in RAW_SHARD_SCHEMA}
    base.update(
        uid=uid,
        row_index=index,
        url=f"http://img.test/{index}",
        caption=f"caption {index}",
        status=status,
        stored_bytes=3 if status == "success" else None,
        original_bytes=5,
    )
    base.update(extra)
    return base


def test_commit_writes_tar_parquet_then_stats(tmp_path: Path) -> None:
    dataset = Dataset(str(tmp_path))
    assert not dataset.raw.shard(7).is_complete()
    stats = write_raw_shard(
        dataset,
        7,
        [
            SampleRecord(row("b" * 32, 1, extra='{"label": "x"}'), b"img"),
            SampleRecord(row("a" * 32, 0, "failed", error_class="http_error", error_message="HTTP 404")),
        ],
    )
    assert dataset.raw.shard(7).is_complete() and dataset.raw.complete_indices() == [7]
    assert stats["rows"] == 2 and stats["successes"] == 1 and stats["errors"] == {"http_error": 1}
    with tarfile.open(tmp_path / "raw" / "00007.tar") as tar:
        names = tar.getnames()
        meta = json.loads(tar.extractfile("b" * 32 + ".json").read())
    assert names == ["b" * 32 + ".jpg", "b" * 32 + ".txt", "b" * 32 + ".json"]
    assert meta["label"] == "x" and meta["uid"] == "b" * 32
    table = pq.read_table(tmp_path / "raw" / "00007.parquet")
    check_schema(table.schema, RAW_SHARD_SCHEMA, "raw shard")
    assert table.column("row_index").to_pylist() == [0, 1]  # one row per input row, in input order
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == [
        "00007.parquet",
        "00007.tar",
        "00007_stats.json",
    ]


def test_a_failed_shard_leaves_no_trace(tmp_path: Path) -> None:
    dataset = Dataset(str(tmp_path))

    def work(commit: ShardCommit) -> dict:
        writer = RawShardWriter(commit, dataset.raw.shard(0), "jpg")
        writer.add(SampleRecord(row("c" * 32, 0), b"img"))
        raise RuntimeError("the task died")

    with pytest.raises(RuntimeError, match="the task died"):
        run_shard(dataset.storage, dataset.raw.shard(0).output, "x", work)
    assert list((tmp_path / "raw").iterdir()) == []
    assert not dataset.raw.shard(0).is_complete()


def test_stored_images_come_back_in_tar_order(tmp_path: Path) -> None:
    dataset = Dataset(str(tmp_path))
    records = [
        SampleRecord(row("b" * 32, 0), b"first"),
        SampleRecord(row("c" * 32, 1, "failed", error_class="http_error"), None),
        SampleRecord(row("a" * 32, 2), b"second"),
    ]
    write_raw_shard(dataset, 3, records, "webp")
    shard = dataset.raw.shard(3)
    assert list(shard.images("webp")) == [("b" * 32, b"first"), ("a" * 32, b"second")]
    assert list(shard.images("jpg")) == []  # txt and json members are never images
    assert list(shard.images("webp", {"a" * 32})) == [("a" * 32, b"second")]
    assert [r["uid"] for r in shard.successes(["uid"])] == ["b" * 32, "a" * 32]


def test_tar_keys_must_be_safe(tmp_path: Path) -> None:
    with open(tmp_path / "x.tar", "wb") as handle:
        writer = TarWriter(handle)
        for bad in ("a.b", "../x", "a/b", ""):
            with pytest.raises(ValueError, match="invalid WebDataset key"):
                writer.write(bad, {"txt": b"x"})
        writer.close()


def test_raw_row_holds_every_column_of_the_contract() -> None:
    row = raw_row(uid="u", row_index=3, url="http://x/a.jpg", caption="a")
    assert list(row) == RAW_SHARD_SCHEMA.names and row["status"] == "failed" and row["sha256"] is None
    with pytest.raises(KeyError, match="not columns of the raw shard schema: \\['colour'\\]"):
        raw_row(uid="u", colour="red")
