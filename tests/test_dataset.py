"""The one dataset layout: names, shard accessors, schema-checked tables, the tar reader."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.dataset import Dataset, final_shard_name, shard_indices, shard_name
from pipeline.shards.tar_reader import TarReadError
from schemas.contract import SchemaMismatch


def _tar(path: Path, members: list[tuple[str, bytes]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_every_stage_folder_and_shard_has_one_name(tmp_path: Path) -> None:
    dataset = Dataset(str(tmp_path))
    assert shard_name(7) == "00007" and final_shard_name(7) == "000007"
    assert dataset.raw.shard(3).tar.path == f"{tmp_path}/raw/00003.tar"
    assert dataset.raw.shard(3).marker == ("raw", "00003_stats.json")
    assert dataset.scores.shard(3).table_file.path == f"{tmp_path}/scores/00003.parquet"
    assert dataset.scores.shard(3).embeddings_file("image") == ("scores", "embeddings", "00003_image.npy")
    assert dataset.dedup.matches.path == f"{tmp_path}/dedup/matches.parquet"
    assert dataset.dedup.centre(2).marker == ("dedup/centre_hashes", "00002_stats.json")
    assert dataset.final.shard(12).tar_name == "000012.tar"
    assert dataset.final.pattern(3) == f"{tmp_path}/final/{{000000..000002}}.tar"
    assert dataset.final.selection(4).path == f"{tmp_path}/final/_selection/00004.parquet"


def test_shard_indices_take_digit_names_only() -> None:
    names = ["00002_stats.json", "00000_stats.json", "x_stats.json", "_summary.json", "00001.tar"]
    assert shard_indices(names, "_stats.json") == [0, 2]


def test_complete_shards_are_those_with_a_marker(tmp_path: Path) -> None:
    dataset = Dataset(str(tmp_path))
    for index in (0, 1, 2):
        dataset.storage.write_bytes(b"", *dataset.raw.shard(index).part(".tar"))
    dataset.storage.write_json({"rows": 1}, *dataset.raw.shard(1).marker)
    assert dataset.raw.complete_indices() == [1]
    assert dataset.raw.shard(1).is_complete() and not dataset.raw.shard(0).is_complete()
    token = dataset.raw.shard(1).token()
    dataset.storage.write_json({"rows": 2}, *dataset.raw.shard(1).marker)
    assert dataset.raw.shard(1).token() != token


def test_tables_are_checked_against_their_contract(tmp_path: Path) -> None:
    dataset = Dataset(str(tmp_path))
    shard = dataset.raw.shard(0)
    Path(shard.table_file.path).parent.mkdir(parents=True)
    pq.write_table(pa.table({"uid": ["a"], "url": ["http://x"]}), shard.table_file.path)
    with pytest.raises(SchemaMismatch, match=r"raw/00000\.parquet: schema does not match"):
        shard.table()


def test_tar_members_samples_and_ranged_reads(tmp_path: Path) -> None:
    dataset = Dataset(str(tmp_path))
    shard = dataset.raw.shard(0)
    _tar(
        Path(shard.tar.path),
        [("a.jpg", b"AJ"), ("a.txt", b"at"), ("b.jpg", b"BJ"), ("b.json", b"{}"), ("c.webp", b"CW")],
    )
    assert list(shard.images()) == [("a", b"AJ"), ("b", b"BJ"), ("c", b"CW")]
    assert list(shard.images(uids={"b"})) == [("b", b"BJ")]
    samples = list(shard.tar.samples())
    assert [(s.key, s.members) for s in samples][1] == ("b", {"jpg": b"BJ", "json": b"{}"})
    index = shard.tar.index()
    with shard.tar.open() as handle:
        assert shard.tar.read_range(handle, index["b"]) == {"jpg": b"BJ", "json": b"{}"}


def test_damaged_and_unsafe_tars_name_the_file_and_reason(tmp_path: Path) -> None:
    dataset = Dataset(str(tmp_path))
    shard = dataset.raw.shard(0)
    _tar(Path(shard.tar.path), [("../evil.jpg", b"x")])
    with pytest.raises(TarReadError, match=r"00000\.tar: unsafe member name '../evil.jpg'"):
        list(shard.images())
    good = dataset.raw.shard(1)
    _tar(Path(good.tar.path), [("a.jpg", b"A" * 5000)])
    data = Path(good.tar.path).read_bytes()
    Path(good.tar.path).write_bytes(data[:1500])
    with pytest.raises(TarReadError, match=r"00001\.tar: .*(cut short|truncated)"):
        list(good.images())
