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


def test_image_threads_and_the_loop_thread_store_the_same_shard(
    world: Path, server: WorldServer, download_options, tmp_path: Path
) -> None:
    lists = write_url_lists(world, server.base_url, out=tmp_path / "lists")
    stored = []
    for threads in ("0", "2"):
        options = download_options(
            lists["parquet"],
            "--samples-per-shard",
            "50",
            "--decode-threads",
            threads,
            dataset=tmp_path / f"threads{threads}",
        )
        prepare_input_shards(Dataset(options.dataset), options.ingest, options.samples_per_shard)
        assert download_shard(0, options)["successes"] > 0
        tar_path = Path(options.dataset) / "raw" / "00000.tar"
        table = pq.read_table(tar_path.with_suffix(".parquet")).drop(["error_message"])
        stored.append((tar_path.read_bytes(), table.select(["uid", "status", "sha256", "phash"])))
    assert stored[0][1].equals(stored[1][1])
    assert sorted(_members(stored[0][0])) == sorted(_members(stored[1][0]))


def _members(data: bytes) -> list[tuple[str, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]
