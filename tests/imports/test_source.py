"""Finding the complete shards of an img2dataset output folder, and refusing what is not one."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.errors import UserInputError
from pipeline.imports.source import FILES, PARQUET, WEBDATASET, find_source


def _meta(folder: Path, stem: str, image: str | None = None, stats: bool = True) -> None:
    columns = {"url": ["http://x.test/a.jpg"], "key": [f"{stem}0000"], "status": ["success"]}
    if image:
        columns[image] = [b"bytes"]
    pq.write_table(pa.table(columns), folder / f"{stem}.parquet")
    if stats:
        (folder / f"{stem}_stats.json").write_text("{}")


def _tar(folder: Path, stem: str, ext: str = "jpg") -> None:
    with tarfile.open(folder / f"{stem}.tar", "w") as tar:
        for name, data in ((f"{stem}0000.{ext}", b"img"), (f"{stem}0000.txt", b"caption")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_layouts_are_told_apart_and_incomplete_shards_left_out(tmp_path: Path) -> None:
    _meta(tmp_path, "00000")
    _tar(tmp_path, "00000")
    _meta(tmp_path, "00001", image="jpg")
    _meta(tmp_path, "00002")
    (tmp_path / "00002").mkdir()
    (tmp_path / "00002" / "000020000.jpg").write_bytes(b"img")
    _meta(tmp_path, "00003", stats=False)  # img2dataset had not finished it
    _tar(tmp_path, "00003")
    (tmp_path / "_tmp").mkdir()  # img2dataset's work folder
    source = find_source(str(tmp_path))
    assert [(s.index, s.layout, s.image_ext) for s in source.shards] == [
        (0, WEBDATASET, "jpg"),
        (1, PARQUET, "jpg"),
        (2, FILES, "jpg"),
    ]
    assert source.incomplete == ("00003",) and source.image_ext == "jpg"
    assert [name for name, _, _ in source.shards[0].versions] == [
        "00000.parquet",
        "00000_stats.json",
        "00000.tar",
    ]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: None, "no complete img2dataset shard"),
        (lambda d: _meta(d, "00000"), "no 00000.tar, no 00000/ folder and no image column"),
        (lambda d: (d / "00000_stats.json").write_text("{}"), "has no 00000.parquet"),
        (
            lambda d: (_meta(d, "00000"), (d / "00000.tfrecord").write_bytes(b"")),
            "tfrecord format is not imported",
        ),
        (
            lambda d: (_meta(d, "00000"), _tar(d, "00000"), _meta(d, "00001"), _tar(d, "00001", "png")),
            "several formats",
        ),
    ],
)
def test_what_is_not_an_img2dataset_output_is_refused(tmp_path: Path, make, message: str) -> None:
    make(tmp_path)
    with pytest.raises(UserInputError, match=message):
        find_source(str(tmp_path))


def test_metadata_without_img2dataset_columns_is_refused(tmp_path: Path) -> None:
    pq.write_table(pa.table({"url": ["u"], "jpg": [b"x"]}), tmp_path / "00000.parquet")
    (tmp_path / "00000_stats.json").write_text("{}")
    with pytest.raises(UserInputError, match="no 'key' column"):
        find_source(str(tmp_path))
    with pytest.raises(UserInputError, match="not a folder"):
        find_source(str(tmp_path / "missing"))
