"""The hand-built ustar writer must produce archives every tar reader accepts, byte for byte."""

from __future__ import annotations

import io
import random
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from pipeline.shards.tar_writer import BLOCK, RECORD, TarWriter, ustar_header


def samples(count: int, seed: int = 0) -> list[tuple[str, dict[str, bytes]]]:
    rng = random.Random(seed)
    return [
        (
            f"{rng.getrandbits(64):016x}",
            {
                "jpg": rng.randbytes(rng.choice([0, 1, 511, 512, 513, rng.randint(0, 40_000)])),
                "txt": f"légende n°{i}".encode(),
                "json": b'{"i": %d}' % i,
            },
        )
        for i in range(count)
    ]


def write(items: list[tuple[str, dict[str, bytes]]]) -> bytes:
    buffer = io.BytesIO()
    writer = TarWriter(buffer)
    for key, members in items:
        writer.write(key, members)
    writer.close()
    writer.close()  # idempotent
    assert writer.count == len(items)
    return buffer.getvalue()


def test_tarfile_reads_every_member_back() -> None:
    items = samples(60)
    data = write(items)
    assert len(data) % RECORD == 0
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:  # checks every checksum
        members = archive.getmembers()
        expected = [(f"{k}.{ext}", body) for k, m in items for ext, body in m.items()]
        assert [m.name for m in members] == [name for name, _ in expected]
        for member, (_, body) in zip(members, expected, strict=True):
            assert member.isreg() and member.mode == 0o444 and member.mtime == 0
            assert member.uname == member.gname == "corpusforge"
            assert archive.extractfile(member).read() == body  # type: ignore[union-attr]


def test_same_bytes_as_tarfile_ustar_stream() -> None:
    """What the writer replaced: tarfile's own USTAR stream with the same member attributes."""
    items = samples(20, seed=1)
    reference = io.BytesIO()
    with tarfile.open(fileobj=reference, mode="w|", format=tarfile.USTAR_FORMAT) as archive:
        for key, members in items:
            for ext, body in members.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size, info.mode, info.mtime = len(body), 0o444, 0
                info.uname = info.gname = "corpusforge"
                archive.addfile(info, io.BytesIO(body))
    assert write(items) == reference.getvalue()


@pytest.mark.skipif(shutil.which("tar") is None, reason="GNU tar not installed")
def test_gnu_tar_lists_and_extracts(tmp_path: Path) -> None:
    items = samples(5, seed=2)
    archive = tmp_path / "x.tar"
    archive.write_bytes(write(items))
    listing = subprocess.run(["tar", "-tf", str(archive)], capture_output=True, text=True, check=True)
    assert listing.stdout.split() == [f"{k}.{ext}" for k, m in items for ext in m]
    subprocess.run(["tar", "-xf", str(archive), "-C", str(tmp_path)], check=True)
    key, members = items[0]
    assert (tmp_path / f"{key}.jpg").read_bytes() == members["jpg"]


def test_empty_archive_is_one_zero_record() -> None:
    assert write([]) == b"\0" * RECORD


def test_header_rejects_names_and_sizes_ustar_cannot_hold() -> None:
    assert len(ustar_header("a" * 100, 0)) == BLOCK
    with pytest.raises(ValueError, match="longer than 100 bytes"):
        ustar_header("a" * 101, 0)
    with pytest.raises(ValueError, match="too large"):
        ustar_header("a.bin", 8**11)
