"""Streaming the stored images out of a raw shard's tar (what score and dedup read back)."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator

from pipeline.dataset import Dataset
from pipeline.shards.raw_writer import RAW_DIR


def iter_raw_images(dataset: Dataset, shard: int, extensions: tuple[str, ...]) -> Iterator[tuple[str, bytes]]:
    """(key, bytes) of every ``KEY.EXT`` member of raw shard ``shard`` whose EXT is in ``extensions``.

    Members come in tar order, one read pass, without loading the whole tar.
    """
    path = dataset.path(RAW_DIR, f"{dataset.shard_name(shard)}.tar")
    with dataset.fs.open(path, "rb") as handle, tarfile.open(fileobj=handle, mode="r|") as archive:
        for member in archive:
            key, _, ext = member.name.partition(".")
            if member.isfile() and ext in extensions:
                extracted = archive.extractfile(member)
                if extracted is not None:
                    yield key, extracted.read()
