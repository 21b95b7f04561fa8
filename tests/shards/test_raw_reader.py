"""Reading stored images back from a raw shard, as the score and dedup jobs do."""

from __future__ import annotations

from pathlib import Path

from pipeline.dataset import Dataset
from pipeline.shards.raw_reader import iter_raw_images
from pipeline.shards.raw_writer import RawShardWriter, SampleRecord
from tests.shards.test_raw_writer import row


def test_yields_images_of_the_asked_extensions_in_tar_order(tmp_path: Path) -> None:
    dataset = Dataset(str(tmp_path))
    writer = RawShardWriter(dataset, 3, "webp")
    writer.add(SampleRecord(row("b" * 32, 0), b"first"))
    writer.add(SampleRecord(row("c" * 32, 1, "failed", error_class="http_error"), None))
    writer.add(SampleRecord(row("a" * 32, 2), b"second"))
    writer.commit()
    assert list(iter_raw_images(dataset, 3, ("webp",))) == [("b" * 32, b"first"), ("a" * 32, b"second")]
    assert list(iter_raw_images(dataset, 3, ("jpg",))) == []  # txt and json members are never images
    captions = dict(iter_raw_images(dataset, 3, ("txt",)))
    assert captions == {"b" * 32: b"caption 0", "a" * 32: b"caption 2"}
