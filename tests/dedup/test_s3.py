"""Benchmark sources read from, and the audit grid written to, a real S3 server (no Spark needed)."""

from __future__ import annotations

import io
import tarfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipeline.dataset import Dataset
from pipeline.dedup.audit import PAIRS_PER_ROW, ROWS_PER_PAGE, AuditMatch, write_audit
from pipeline.dedup.benchmark_sources import (
    FOLDER,
    HASHES,
    TARS,
    image_bytes,
    iter_tar_images,
    resolve_sources,
)
from pipeline.errors import UserInputError


def jpeg(colour: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def tar_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_benchmark_sources_on_s3(s3) -> None:
    images = {"a/red.jpg": jpeg("red"), "blue.png": jpeg("blue")}
    for name, data in images.items():
        s3.fs.pipe_file(s3.url("bench", "photos", name), data)
    s3.fs.pipe_file(s3.url("bench", "photos", "_hidden", "x.jpg"), jpeg("green"))
    s3.fs.pipe_file(s3.url("bench", "shards.tar"), tar_bytes({"k1.jpg": jpeg("red"), "k1.txt": b"c"}))
    table = io.BytesIO()
    pq.write_table(pa.table({"phash": ["0123456789abcdef"]}), table)
    s3.fs.pipe_file(s3.url("bench", "published.parquet"), table.getvalue())

    paths = (s3.url("bench", "photos"), s3.url("bench", "shards.tar"), s3.url("bench", "published.parquet"))
    folder, tars, hashes = resolve_sources(paths)
    assert (folder.kind, tars.kind, hashes.kind) == (FOLDER, TARS, HASHES)
    assert (folder.name, tars.name, hashes.name) == ("photos", "shards", "published")
    assert folder.files == (s3.url("bench", "photos", "a", "red.jpg"), s3.url("bench", "photos", "blue.png"))
    assert [folder.member_of(f) for f in folder.files] == ["a/red.jpg", "blue.png"]
    assert image_bytes(folder, "a/red.jpg") == images["a/red.jpg"]
    assert list(iter_tar_images(tars.files[0])) == [("k1", jpeg("red"))]
    assert image_bytes(tars, "k1") == jpeg("red") and image_bytes(hashes, "x") is None
    # The fingerprint (which decides whether saved benchmark hashes are reused) is stable...
    assert resolve_sources(paths)[0].fingerprint == folder.fingerprint
    s3.fs.pipe_file(s3.url("bench", "photos", "blue.png"), jpeg("navy"))  # ...and sees a change.
    assert resolve_sources(paths)[0].fingerprint != folder.fingerprint


def test_bad_benchmark_urls_are_clear_errors(s3) -> None:
    with pytest.raises(UserInputError, match=r"--benchmark s3://.*/missing: no such file or folder"):
        resolve_sources((s3.url("missing"),))
    with pytest.raises(
        UserInputError, match="--benchmark abfs://c/x: the abfs:// file system is not installed"
    ):
        resolve_sources(("abfs://c/x",))


def test_audit_grid_written_to_s3(s3) -> None:
    dataset = Dataset(s3.url("dataset"))
    per_page = PAIRS_PER_ROW * ROWS_PER_PAGE
    matches = [AuditMatch(f"bench/{i:03d}.jpg", f"uid{i}", i % 5, False) for i in range(per_page + 2)]
    rejected = [AuditMatch("bench/000.jpg", "other", 9, False, thumbnail_distance=0.4, verified=False)]
    index = write_audit(
        dataset,
        matches,
        {m.benchmark_id: jpeg("red") for m in matches},
        {m.uid: jpeg("blue") for m in [*matches, *rejected]},
        len(matches),
        rejected,
        1,
    )
    assert index == s3.url("dataset", "dedup", "audit", "index.html")
    audit = s3.url("dataset", "dedup", "audit")
    assert sorted(p.rsplit("/", 1)[-1] for p in s3.fs.ls(audit)) == [
        "index.html",
        "page_000.png",
        "page_001.png",
        "rejected_000.png",
    ]
    page = s3.fs.cat_file(index).decode()
    assert 'src="page_001.png"' in page and 'src="rejected_000.png"' in page
    assert (
        "<td>other</td><td>whole</td><td>-</td><td>-</td><td>-</td><td>-</td><td>40.0%</td><td>rejected</td>"
        in page
    )
    # The report shows the dropped pages only.
    assert dataset.dedup.audit_pages() == [f"{audit.removeprefix('s3://')}/page_00{i}.png" for i in (0, 1)]
    write_audit(dataset, matches[:3], {}, {}, 3)  # a rerun with fewer pages leaves no stale page
    assert sorted(p.rsplit("/", 1)[-1] for p in s3.fs.ls(audit)) == ["index.html", "page_000.png"]
