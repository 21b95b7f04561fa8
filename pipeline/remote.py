"""Single files on any fsspec URL, for the tools that are not stages (trainer, score model, report).

The stages reach whole folders through :class:`pipeline.storage.Storage`; the trainer and the
model loaders also name single files and folders by URL (``--output``, ``--pretrained``,
``--resume``, ``--eval-world``). This module says whether such a URL is on local disk, checks
that its file system is installed (one clear error before any work), and copies local files to
a URL atomically (temporary name, then rename: a reader sees the whole object or none).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import fsspec

from pipeline.errors import UserInputError
from pipeline.storage import Storage, storage_url

_LOCAL_PROTOCOLS = ("file", "local")


def checked_url(url: str, flag: str) -> str:
    """``url`` if its file system package is installed, else a ``UserInputError`` naming ``flag``."""
    try:
        return storage_url(url)
    except ValueError as exc:
        raise UserInputError(f"{flag} {url}: {exc}") from exc


def url_to_fs(url: str, flag: str = "path") -> tuple[Any, str]:
    """``(file system, path)`` of ``url``, after :func:`checked_url`."""
    return fsspec.core.url_to_fs(checked_url(url, flag))


def is_local(url: str | Path) -> bool:
    """True for local paths and ``file://`` URLs (where a rename is atomic and files can be appended)."""
    text = str(url)
    if "::" in text:
        return False  # chained URLs (simplecache::s3://...) are remote
    protocol = fsspec.core.split_protocol(text)[0]
    return protocol is None or protocol in _LOCAL_PROTOCOLS


def local_path(url: str | Path) -> Path:
    """The local path of a local ``url`` (``file://`` stripped)."""
    text = str(url)
    return Path(text.split("://", 1)[1]) if text.startswith("file://") else Path(text)


def join(url: str | Path, *parts: str) -> str:
    """``url/parts`` (a local path stays a plain path)."""
    return "/".join([str(url).rstrip("/"), *parts])


def split(url: str) -> tuple[str, str]:
    """``(folder URL, file name)`` of a file URL."""
    folder, _, name = url.rstrip("/").rpartition("/")
    return folder, name


def upload(local: Path, url: str) -> None:
    """Copy local file ``local`` to ``url`` atomically (temporary sibling, then rename)."""
    folder, name = split(url)
    with Storage(folder).atomic(name) as handle, open(local, "rb") as source:
        shutil.copyfileobj(source, handle, 8 << 20)


def write_bytes(data: bytes, url: str) -> None:
    """Write ``data`` to ``url`` atomically (local paths included)."""
    folder, name = split(url)
    Storage(folder).write_bytes(data, name)


def fresh_fs(url: str) -> tuple[Any, str]:
    """``(file system, path)`` of ``url`` with any cached listing of it dropped.

    s3fs and gcsfs cache folder listings per file system object, and other processes (executors,
    an earlier run) write behind this one's back: every question about what exists asks the store.
    """
    fs, path = fsspec.core.url_to_fs(url)
    fs.invalidate_cache(path)
    return fs, path


def exists(url: str, flag: str, folder: bool = False) -> bool:
    """Whether ``url`` names an existing file (a folder with ``folder``), asking the store itself."""
    url_to_fs(url, flag)
    fs, path = fresh_fs(url)
    return bool(fs.isdir(path) if folder else fs.isfile(path))
