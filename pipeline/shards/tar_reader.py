"""One reader of WebDataset tars: member names, streamed members and samples, ranged reads.

Every tar the stages read goes through here: raw shards (score, dedup, build_shards, the
report), benchmark tars and the benchmarks' checks. (The trainer streams final shards with its
own skip-and-count policy, :mod:`pipeline.train.tario`.) A member ``KEY.EXT`` belongs to the sample
``KEY`` by WebDataset's rule: the key is the name up to the first dot of its last path
component (``dir/a.b.jpg`` is key ``dir/a``, extension ``b.jpg``). Absolute names and names with
a ``..`` component are refused; what to do with a refused member or a damaged tar is the
caller's policy (the reader raises :class:`TarReadError`, naming the tar and the reason).
"""

from __future__ import annotations

import tarfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO


class TarReadError(ValueError):
    """A tar that cannot be read on: unreadable, truncated, or holding an unsafe member name."""


@dataclass(frozen=True)
class Member:
    """One regular file of a tar and where its bytes are."""

    name: str
    key: str
    ext: str
    offset: int  # first byte of its header
    data_offset: int
    size: int


@dataclass(frozen=True)
class Sample:
    """The members of one key, in tar order (``ext -> bytes``)."""

    key: str
    members: dict[str, bytes]


@dataclass(frozen=True)
class SampleRange:
    """Where one sample's members lie in a tar: one contiguous byte range and the members in it."""

    offset: int  # first header byte of the sample's first member
    length: int  # up to the end of its last member's data
    members: tuple[tuple[str, int, int], ...]  # (ext, data offset relative to ``offset``, size)

    def layout(self) -> str:
        """The members as one string (``ext:offset:size,...``), to carry in a table column."""
        return ",".join(f"{ext}:{offset}:{size}" for ext, offset, size in self.members)

    @classmethod
    def from_layout(cls, offset: int, length: int, layout: str) -> SampleRange:
        members = []
        for part in layout.split(","):
            ext, start, size = part.rsplit(":", 2)
            members.append((ext, int(start), int(size)))
        return cls(offset, length, tuple(members))

    def split(self, data: bytes) -> dict[str, bytes]:
        """``ext -> bytes`` of the members, from the ``length`` bytes read at ``offset``."""
        return {ext: data[start : start + size] for ext, start, size in self.members}


def split_name(name: str) -> tuple[str, str] | None:
    """``(key, ext)`` of a member name, or None when it has no extension."""
    base_start = name.rfind("/") + 1
    dot = name.find(".", base_start)
    if dot <= base_start or dot == len(name) - 1:
        return None
    return name[:dot], name[dot + 1 :]


def unsafe_name(name: str) -> bool:
    """True for names a reader must never act on: absolute, or with a ``..`` component."""
    return name.startswith("/") or ".." in name.replace("\\", "/").split("/")


class TarStream:
    """Members and samples of one tar, in one pass over ``handle``.

    ``seek``: the handle is seekable and the data of members nobody asked for is skipped by
    seeking (local files); otherwise the tar is read as a stream (any file object, compressed
    or not). After a full pass, ``cut_between_members`` tells a tar that ended cleanly between
    two members but lacks its end-of-archive marker (``size``, the file's size, must be known).
    """

    def __init__(self, handle: BinaryIO, source: str, size: int | None = None, seek: bool = False) -> None:
        self.handle = handle
        self.source = source
        self.size = size
        self.seek = seek
        self.cut_between_members = False

    def members(
        self, wanted: Callable[[str, str], bool] | None = None
    ) -> Iterator[tuple[Member, bytes | None]]:
        """Every regular file with a ``KEY.EXT`` name, with its bytes when ``wanted(key, ext)``.

        Raises :class:`TarReadError` on an unsafe name, a damaged or truncated tar.
        """
        try:
            with tarfile.open(fileobj=self.handle, mode="r:" if self.seek else "r|*") as tar:
                for info in tar:
                    if not info.isfile():
                        continue
                    if unsafe_name(info.name):
                        raise TarReadError(f"{self.source}: unsafe member name {info.name!r}")
                    parts = split_name(info.name)
                    if parts is None:
                        continue
                    member = Member(info.name, parts[0], parts[1], info.offset, info.offset_data, info.size)
                    if wanted is not None and not wanted(*parts):
                        yield member, None
                        continue
                    extracted = tar.extractfile(info)
                    data = extracted.read() if extracted is not None else b""
                    if len(data) != info.size:  # tarfile's stream mode returns short reads silently
                        short = f"{len(data)} of {info.size} bytes"
                        raise TarReadError(f"{self.source}: member {info.name!r} cut short ({short})")
                    yield member, data
                end = tar.offset
        except (tarfile.TarError, EOFError, zlib.error) as exc:
            raise TarReadError(
                f"{self.source}: unreadable or truncated tar ({type(exc).__name__}: {exc})"
            ) from exc
        self.cut_between_members = self.size is not None and self.size < end + 2 * tarfile.BLOCKSIZE

    def samples(self, exts: Callable[[str], bool] | None = None) -> Iterator[Sample]:
        """Runs of consecutive members with the same key, with the members ``exts(ext)`` accepts."""
        key: str | None = None
        members: dict[str, bytes] = {}
        for member, data in self.members(None if exts is None else lambda _k, ext: exts(ext)):
            if member.key != key:
                if key is not None:
                    yield Sample(key, members)
                key, members = member.key, {}
            if data is not None:
                members[member.ext] = data
        if key is not None:
            yield Sample(key, members)

    def index(self) -> dict[str, SampleRange]:
        """The byte range of every sample (members grouped by key; needs a seekable handle).

        Members are located by their own offsets, so a range stays right even when another tool
        interleaved samples (it then only spans more bytes).
        """
        grouped: dict[str, list[Member]] = {}
        for member, _ in self.members(lambda _k, _e: False):
            grouped.setdefault(member.key, []).append(member)
        index = {}
        for key, members in grouped.items():
            start = min(m.offset for m in members)
            end = max(m.data_offset + m.size for m in members)
            layout = tuple((m.ext, m.data_offset - start, m.size) for m in members)
            index[key] = SampleRange(start, end - start, layout)
        return index


def read_range(handle: BinaryIO, sample: SampleRange, source: str) -> dict[str, bytes]:
    """The members of one sample, with one ranged read."""
    handle.seek(sample.offset)
    data = handle.read(sample.length)
    if len(data) != sample.length:
        raise TarReadError(f"{source} ends before a sample indexed at byte {sample.offset}: it changed since")
    return sample.split(data)
