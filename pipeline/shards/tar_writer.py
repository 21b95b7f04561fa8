"""A minimal, deterministic WebDataset tar writer over any binary file object.

Headers are built here rather than by ``tarfile``: its per-member ``TarInfo`` machinery and
10 KiB stream blocks cost ~0.1 ms a member, a quarter of the download job's per-image overhead
outside the image work. Each sample goes out in one ``write`` call. The archive is plain POSIX
ustar (``tarfile``, GNU tar and webdataset read it): regular files, mode 0444, mtime 0, owner
``corpusforge``, two zero blocks at the end, padded to tar's 10 KiB record size.
"""

from __future__ import annotations

from typing import BinaryIO

BLOCK = 512
RECORD = 20 * BLOCK  # tar pads the archive to a whole number of records
_NUL = b"\0"
_OWNER = b"corpusforge".ljust(32, _NUL)
# mode, uid, gid: fixed for every member (octal digits, NUL-terminated, as tar writes them)
_MODE_UID_GID = b"0000444\0" + b"0000000\0" + b"0000000\0"
_MTIME = b"%011o\0" % 0
_CHECKSUM_BLANK = b" " * 8
# type '0' (regular file), empty link name, ustar magic and version, owner and group names,
# empty device numbers and name prefix, padding to the end of the 512-byte block
_TAIL = b"0" + _NUL * 100 + b"ustar\x0000" + _OWNER + _OWNER + _NUL * 16 + _NUL * 155 + _NUL * 12


def ustar_header(name: str, size: int) -> bytes:
    """The 512-byte ustar header of a regular file ``name`` (<= 100 bytes of UTF-8) of ``size`` bytes."""
    encoded = name.encode("utf-8")
    if len(encoded) > 100:
        raise ValueError(f"tar member name longer than 100 bytes: {name!r}")
    if size >= 8**11:
        raise ValueError(f"tar member {name!r} too large for a ustar header: {size} bytes")
    head = encoded.ljust(100, _NUL) + _MODE_UID_GID + b"%011o\0" % size + _MTIME
    checksum = sum(head) + sum(_CHECKSUM_BLANK) + sum(_TAIL)
    return head + b"%06o\0 " % checksum + _TAIL


def _padding(size: int) -> bytes:
    return _NUL * (-size % BLOCK)


class TarWriter:
    """Appends ``KEY.EXT`` members; all members of one key are written together."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self._offset = 0
        self._closed = False
        self.count = 0

    def write(self, key: str, members: dict[str, bytes]) -> None:
        """Write one sample; ``key`` must be dot-free and contain no path separator."""
        if "." in key or "/" in key or not key:
            raise ValueError(f"invalid WebDataset key {key!r}")
        parts: list[bytes] = []
        for ext, data in members.items():
            parts += (ustar_header(f"{key}.{ext}", len(data)), data, _padding(len(data)))
        chunk = b"".join(parts)
        self._handle.write(chunk)
        self._offset += len(chunk)
        self.count += 1

    def close(self) -> None:
        """End the archive (two zero blocks, then zeros to a whole record); the handle stays open."""
        if self._closed:
            return
        self._closed = True
        end = 2 * BLOCK
        self._handle.write(_NUL * (end + (-(self._offset + end) % RECORD)))
