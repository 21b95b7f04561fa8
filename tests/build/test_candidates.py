"""Tar member indexing (what build_shards' candidates carry): a sample's bytes come back exactly
from one ranged read; and the candidates of one raw shard."""

from __future__ import annotations

import io
import tarfile

from pipeline.shards.tar_reader import SampleRange, TarStream
from pipeline.shards.tar_writer import TarWriter


def index_tar(handle: io.BytesIO) -> dict[str, SampleRange]:
    return TarStream(handle, "test.tar", seek=True).index()


def _slice(data: bytes, key: str, index: dict[str, SampleRange]) -> dict[str, bytes]:
    entry = SampleRange.from_layout(index[key].offset, index[key].length, index[key].layout())
    return entry.split(data[entry.offset : entry.offset + entry.length])


def test_index_of_a_corpusforge_tar() -> None:
    buffer = io.BytesIO()
    writer = TarWriter(buffer)
    samples = {
        f"k{i}": {"jpg": bytes([i]) * (100 + 700 * i), "txt": f"caption {i}".encode(), "json": b"{}"}
        for i in range(5)
    }
    for key, members in samples.items():
        writer.write(key, members)
    writer.close()
    data = buffer.getvalue()
    index = index_tar(io.BytesIO(data))
    assert set(index) == set(samples)
    for key, members in samples.items():
        assert _slice(data, key, index) == members


def test_interleaved_members_of_another_tool_are_still_exact() -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        members = [("a.jpg", b"A" * 600), ("b.jpg", b"B" * 50), ("a.txt", b"cap a"), ("b.txt", b"cap b")]
        for name, body in members:
            info = tarfile.TarInfo(f"some/dir/{name}")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
        tar.addfile(tarfile.TarInfo("some/dir"))  # directories and names without a dot are ignored
        readme = tarfile.TarInfo("README")
        readme.size = 2
        tar.addfile(readme, io.BytesIO(b"hi"))
    data = buffer.getvalue()
    index = index_tar(io.BytesIO(data))
    # Keys keep their folder, as WebDataset's tar reader names them.
    assert set(index) == {"some/dir/a", "some/dir/b"}
    assert _slice(data, "some/dir/a", index) == {"jpg": b"A" * 600, "txt": b"cap a"}
    assert _slice(data, "some/dir/b", index) == {"jpg": b"B" * 50, "txt": b"cap b"}


def test_shard_candidates_of_a_raw_shard(tmp_path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.build.candidates import CANDIDATE_COLUMNS, shard_candidates
    from pipeline.build.shard_plan import shuffle_key
    from pipeline.dataset import Dataset
    from testkit.raw_shards import fabricate_dataset

    fabricate_dataset(tmp_path / "ds", shards=1, samples_per_shard=40, seed=4)
    raw = pq.read_table(tmp_path / "ds" / "raw" / "00000.parquet").to_pylist()
    successes = {r["uid"]: r for r in raw if r["status"] == "success"}
    scores_path = tmp_path / "ds" / "scores" / "00000.parquet"
    table = pq.read_table(scores_path)
    nan_uid = table.column("uid")[0].as_py()
    values = [
        float("nan") if u == nan_uid else v
        for u, v in zip(*table.select(["uid", "clip_score"]).to_pydict().values(), strict=True)
    ]
    scores = table.set_column(1, "clip_score", pa.array(values, pa.float32()))
    pq.write_table(scores, scores_path)

    rows = [
        dict(zip(CANDIDATE_COLUMNS, r, strict=True))
        for r in shard_candidates(Dataset(str(tmp_path / "ds")), 0, 7, True)
    ]
    assert {r["uid"] for r in rows} == set(successes) and len(rows) < len(raw)  # failures are not candidates
    data = (tmp_path / "ds" / "raw" / "00000.tar").read_bytes()
    for row in rows:
        source = successes[row["uid"]]
        assert row["caption_length"] == len(source["caption"].strip())
        assert (row["original_width"], row["original_height"]) == (
            source["original_width"],
            source["original_height"],
        )
        assert row["sort_key"] == shuffle_key(7, row["uid"])
        blob = data[row["offset"] : row["offset"] + row["length"]]
        members = SampleRange.from_layout(row["offset"], row["length"], row["members"]).split(blob)
        assert members["txt"].decode() == source["caption"] and members["jpg"][:2] == b"\xff\xd8"
        assert (row["clip_score"] is None) == (row["uid"] == nan_uid)
