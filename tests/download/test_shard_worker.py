"""The per-shard core without Spark, on a non-local fsspec filesystem."""

from __future__ import annotations

import dataclasses
import io
import json
import tarfile
from pathlib import Path

import fsspec
import pyarrow.parquet as pq

from pipeline.dataset import Dataset
from pipeline.download.input_shards import prepare_input_shards
from pipeline.download.shard_worker import download_shard
from pipeline.synthetic.server import WorldServer
from pipeline.synthetic.world import write_url_lists


def test_shard_worker_writes_through_fsspec(
    world: Path, server: WorldServer, download_options, tmp_path: Path
) -> None:
    lists = write_url_lists(world, server.base_url, out=tmp_path / "lists")
    options = dataclasses.replace(
        download_options(
            lists["parquet"],
            "--samples-per-shard",
            "50",
            "--encode-format",
            "webp",
            "--resize-mode",
            "center_crop",
            "--image-size",
            "64",
        ),
        dataset="memory://corpusforge-test",
    )
    dataset = Dataset(options.dataset)
    prepare_input_shards(dataset, options.ingest, options.samples_per_shard)
    stats = download_shard(1, options)
    assert stats["rows"] == 30 and stats["successes"] == 30 and not stats["resumed"]
    fs = fsspec.filesystem("memory")
    names = sorted(p.rsplit("/", 1)[-1] for p in fs.ls("/corpusforge-test/raw", detail=False))
    assert names == ["00001.parquet", "00001.tar", "00001_stats.json"]
    with (
        fs.open("/corpusforge-test/raw/00001.tar", "rb") as handle,
        tarfile.open(fileobj=io.BytesIO(handle.read())) as tar,
    ):
        webps = [m for m in tar.getnames() if m.endswith(".webp")]
        meta = json.loads(tar.extractfile(webps[0].replace(".webp", ".json")).read())
    assert len(webps) == 30 and (meta["width"], meta["height"]) == (64, 64)
    with fs.open("/corpusforge-test/raw/00001.parquet", "rb") as handle:
        assert pq.read_table(handle).column("row_index").to_pylist() == list(range(50, 80))
    assert download_shard(1, options)["resumed"] is True  # complete shards are not redone
    fs.rm("/corpusforge-test", recursive=True)
