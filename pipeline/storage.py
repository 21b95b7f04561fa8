"""One storage abstraction: a folder on any fsspec file system, and its atomic writes.

Every read and write of a stage goes through a :class:`Storage`: local disk, S3, GCS or HDFS
behave the same way here. Writers never make a half-written file visible under its final name:
they write to a unique temporary sibling (``.NAME.tmp.RANDOM``: hidden, so folder readers such
as pyarrow and Spark skip it) and rename it into place. On
object stores a rename is a copy and a delete, so a reader can still only ever see the complete
object or none.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import fsspec

TEMP_MARK = ".tmp."


def storage_url(text: str) -> str:
    """``text`` (a path or fsspec URL) if its file system can be used here, else ``ValueError``.

    Used as the parser of every path option, so that ``--dataset s3://...`` without s3fs fails
    at once with the package to install, not in the middle of a Spark job.
    """
    for part in text.split("::"):  # chained URLs: simplecache::s3://...
        protocol = fsspec.core.split_protocol(part)[0]
        if protocol is None:
            continue
        try:
            fsspec.get_filesystem_class(protocol)
        except ImportError as exc:
            hint = " (pip install 'corpusforge[s3]')" if protocol in ("s3", "s3a") else ""
            raise ValueError(f"the {protocol}:// file system is not installed: {exc}{hint}") from exc
        except ValueError as exc:
            raise ValueError(f"unknown file system {protocol!r}: {exc}") from exc
    return text


class Storage:
    """A folder (``url``, any fsspec URL) and the file system it lives on."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.fs, root = fsspec.core.url_to_fs(url)
        self.root = root.rstrip("/") if root not in ("/", "") else root

    def __repr__(self) -> str:
        return f"Storage({self.url!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url}  # file system objects are rebuilt on executors

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"])  # type: ignore[misc]

    # -- names ------------------------------------------------------------------------------
    def path(self, *parts: str) -> str:
        """The file system path of ``parts`` under the root (what ``fs`` methods take)."""
        return "/".join([self.root, *parts]) if parts else self.root

    def display(self, *parts: str) -> str:
        """``parts`` as the user would write it (protocol included), for messages."""
        path = self.path(*parts)
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        return path if protocol in ("file", "local") else f"{protocol}://{path}"

    def child(self, *parts: str) -> Storage:
        """The storage of a sub-folder."""
        return Storage("/".join([self.url.rstrip("/"), *parts]))

    # -- reading ----------------------------------------------------------------------------
    # Object-store file systems (s3fs, gcsfs) cache folder listings per process; executors and
    # other jobs write behind this process's back, so every question about what exists asks
    # the store itself. (Local disk has no cache: invalidating it costs nothing.)
    def _fresh(self, path: str) -> str:
        self.fs.invalidate_cache(path)
        return path

    def exists(self, *parts: str) -> bool:
        return self.fs.exists(self._fresh(self.path(*parts)))

    def isdir(self, *parts: str) -> bool:
        return self.fs.isdir(self._fresh(self.path(*parts)))

    def size(self, *parts: str) -> int:
        return int(self.fs.size(self.path(*parts)))

    def names(self, *folder: str) -> list[str]:
        """Base names of the entries of a folder (sorted; empty when it does not exist)."""
        path = self._fresh(self.path(*folder))
        if not self.fs.exists(path):
            return []
        # Object stores may list a folder's own marker object ("raw/") among its entries.
        entries = (p.rstrip("/") for p in self.fs.ls(path, detail=False))
        return sorted(p.rsplit("/", 1)[-1] for p in entries if p != path.rstrip("/"))

    def open(self, *parts: str, mode: str = "rb", **kwargs: Any) -> IO[Any]:
        return self.fs.open(self.path(*parts), mode, **kwargs)

    def read_bytes(self, *parts: str) -> bytes:
        with self.open(*parts) as handle:
            return handle.read()

    def read_json(self, *parts: str) -> Any:
        return json.loads(self.read_bytes(*parts))

    def read_json_if_exists(self, *parts: str) -> Any | None:
        return self.read_json(*parts) if self.exists(*parts) else None

    # -- writing ----------------------------------------------------------------------------
    def makedirs(self, *parts: str) -> None:
        self.fs.makedirs(self.path(*parts), exist_ok=True)

    def remove(self, *parts: str) -> None:
        """Delete a file or a folder with everything in it (nothing when it does not exist)."""
        path = self.path(*parts)
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)

    @staticmethod
    def temp_name(final: str) -> str:
        """A unique hidden sibling of path ``final``: every writer (and Spark task attempt) gets its own."""
        folder, _, name = final.rpartition("/")
        return f"{folder}/.{name}{TEMP_MARK}{uuid.uuid4().hex[:12]}"

    def rename(self, source: str, final: str) -> None:
        """Move file system path ``source`` onto ``final`` (replacing it)."""
        self.fs.mv(source, final)

    @contextmanager
    def atomic(self, *parts: str) -> Iterator[IO[bytes]]:
        """``with storage.atomic("raw", "x.tar") as handle``: written to a temporary name, renamed
        into place when the block ends without an error, deleted when it raises."""
        final = self.path(*parts)
        self.fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
        temp = self.temp_name(final)
        try:
            with self.fs.open(temp, "wb") as handle:
                yield handle
            self.rename(temp, final)
        finally:
            if self.fs.exists(temp):
                self.fs.rm(temp)

    def write_bytes(self, data: bytes, *parts: str) -> None:
        """Write ``data`` atomically."""
        with self.atomic(*parts) as handle:
            handle.write(data)

    def write_json(self, data: Any, *parts: str) -> None:
        """Write JSON atomically (indented, keys sorted: reruns write the same bytes)."""
        self.write_bytes(json.dumps(data, indent=2, sort_keys=True).encode("utf-8"), *parts)

    def write_parquet(self, table: Any, *parts: str) -> None:
        """Write an Arrow table as Parquet atomically."""
        self.write_bytes(parquet_bytes(table), *parts)

    def remove_temporaries(self, *folder: str) -> int:
        """Delete leftovers of interrupted writers in a folder; returns how many.

        Only safe while no writer runs: the stages call it before their tasks start.
        """
        stale = [name for name in self.names(*folder) if TEMP_MARK in name]
        for name in stale:
            self.fs.rm(self.path(*folder, name), recursive=True)
        return len(stale)


def parquet_bytes(table: Any) -> bytes:
    """An Arrow table encoded as one Parquet file."""
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()
