"""Tar member indexing: a sample's bytes come back exactly from one ranged read."""

from __future__ import annotations

import io
import tarfile

from pipeline.build.candidates import index_tar, parse_members
from pipeline.shards.tar_writer import TarWriter


def _slice(data: bytes, key: str, index) -> dict[str, bytes]:
    entry = index[key]
    blob = data[entry.offset : entry.offset + entry.length]
    return {ext: blob[off : off + size] for ext, off, size in parse_members(entry.members)}


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
    assert set(index) == {"a", "b"}
    assert _slice(data, "a", index) == {"jpg": b"A" * 600, "txt": b"cap a"}
    assert _slice(data, "b", index) == {"jpg": b"B" * 50, "txt": b"cap b"}
