"""A minimal, deterministic WebDataset tar writer over any binary file object."""

from __future__ import annotations

import io
import tarfile
from typing import BinaryIO


class TarWriter:
    """Appends ``KEY.EXT`` members; all members of one key are written together."""

    def __init__(self, handle: BinaryIO) -> None:
        self._tar = tarfile.open(fileobj=handle, mode="w|", format=tarfile.USTAR_FORMAT)  # noqa: SIM115
        self.count = 0

    def write(self, key: str, members: dict[str, bytes]) -> None:
        """Write one sample; ``key`` must be dot-free and contain no path separator."""
        if "." in key or "/" in key or not key:
            raise ValueError(f"invalid WebDataset key {key!r}")
        for ext, data in members.items():
            info = tarfile.TarInfo(f"{key}.{ext}")
            info.size = len(data)
            info.mode = 0o444
            info.mtime = 0  # reproducible bytes: reruns write identical members
            info.uname = info.gname = "corpusforge"
            self._tar.addfile(info, io.BytesIO(data))
        self.count += 1

    def close(self) -> None:
        self._tar.close()
