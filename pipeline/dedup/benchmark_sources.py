"""What a ``--benchmark PATH`` holds: image files, WebDataset tars, or precomputed hashes.

Each path becomes one :class:`BenchmarkSource` with a short unique name; every benchmark image
gets the id ``NAME/MEMBER`` (member: the file's path inside the folder, or the tar's sample key),
stable across runs as long as the source does not change. Paths are local or any fsspec URL
(``s3://bucket/benchmarks/imagenet-val``); the executors that hash the images read them there.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import fsspec

from pipeline.errors import UserInputError
from pipeline.remote import checked_url
from pipeline.shards.tar_reader import TarReadError, TarStream

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({"jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"})
FOLDER = "folder"
TARS = "tars"
HASHES = "hashes"


@dataclass(frozen=True)
class BenchmarkSource:
    """One ``--benchmark`` argument, resolved to the files it holds."""

    path: str  # as the user gave it
    kind: str  # folder | tars | hashes
    name: str  # unique among the sources; first part of every benchmark_id
    files: tuple[str, ...]  # fsspec URLs: image files, tar files, or one parquet
    fingerprint: tuple[tuple[str, int, str], ...]  # (file, size, modification stamp)

    def member_of(self, file: str) -> str:
        """A file's path relative to the source folder (its member name in benchmark ids)."""
        root = self.path.rstrip("/")
        return file[len(root) + 1 :] if file.startswith(root + "/") else file.rsplit("/", 1)[-1]


def resolve_sources(paths: tuple[str, ...]) -> list[BenchmarkSource]:
    """Resolve every ``--benchmark`` path; raise :class:`UserInputError` naming any unusable one."""
    sources: list[BenchmarkSource] = []
    names: set[str] = set()
    for path in paths:
        source = _resolve(path)
        name = source.name
        suffix = 2
        while name in names:
            name, suffix = f"{source.name}-{suffix}", suffix + 1
        names.add(name)
        sources.append(BenchmarkSource(source.path, source.kind, name, source.files, source.fingerprint))
    return sources


def _resolve(path: str) -> BenchmarkSource:
    fs, root = fsspec.core.url_to_fs(checked_url(path, "--benchmark"))
    fs.invalidate_cache(root)  # object stores: a listing cached by this process may be stale
    if not fs.exists(root):
        raise UserInputError(f"--benchmark {path}: no such file or folder")
    protocol = path.split("://", 1)[0] + "://" if "://" in path else ""
    name = root.rstrip("/").rsplit("/", 1)[-1] or "benchmark"
    if fs.isdir(root):
        files = sorted(p for p in fs.find(root) if not _hidden(p[len(root.rstrip("/")) + 1 :]))
        tars = [f for f in files if f.endswith(".tar")]
        images = [f for f in files if _extension(f) in IMAGE_EXTENSIONS]
        if tars and images:
            raise UserInputError(
                f"--benchmark {path}: holds both .tar shards and image files; give them as separate sources"
            )
        if not tars and not images:
            raise UserInputError(
                f"--benchmark {path}: no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) or .tar shards in it"
            )
        kind, chosen = (TARS, tars) if tars else (FOLDER, images)
    else:
        ext = _extension(root)
        if ext == "tar":
            kind, chosen = TARS, [root]
        elif ext == "parquet":
            kind, chosen = HASHES, [root]
        elif ext in IMAGE_EXTENSIONS:
            kind, chosen = FOLDER, [root]
        else:
            raise UserInputError(
                f"--benchmark {path}: not a folder, .tar, .parquet or image file (extension {ext!r})"
            )
        name = name.rsplit(".", 1)[0]
    fingerprint = tuple(_stamp(fs, f) for f in chosen)
    files = tuple(protocol + f if protocol else f for f in chosen)
    return BenchmarkSource(path, kind, name, files, fingerprint)


def _hidden(relative: str) -> bool:
    return any(part.startswith((".", "_")) for part in relative.split("/"))


def _extension(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def _stamp(fs: Any, path: str) -> tuple[str, int, str]:
    """(file, size, what changes when the file does): the modification time on local disk and
    HDFS, the ETag on object stores (S3's LastModified prints differently from a listing and from
    a HEAD request, so it would make an unchanged source look changed)."""
    info = fs.info(path)
    modified = info.get("mtime") or info.get("ETag") or info.get("LastModified") or ""
    return path, int(info.get("size") or 0), str(modified)


def iter_tar_images(url: str) -> Iterator[tuple[str, bytes]]:
    """(sample key, image bytes) of every image member of a WebDataset tar.

    A key's first image member is used; members with unsafe names (``..``, absolute paths) are
    refused with an error naming the tar, as are truncated or corrupt tars.
    """
    seen: set[str] = set()

    def wanted(key: str, ext: str) -> bool:
        return ext.rsplit(".", 1)[-1].lower() in IMAGE_EXTENSIONS and key not in seen

    with fsspec.open(url, "rb") as handle:
        try:
            for member, data in TarStream(handle, url).members(wanted):
                if data is not None:
                    seen.add(member.key)
                    yield member.key, data
        except TarReadError as exc:
            raise UserInputError(f"--benchmark {exc}") from exc


def read_file(url: str) -> bytes:
    """All bytes of one benchmark image file."""
    with fsspec.open(url, "rb") as handle:
        return handle.read()


def image_bytes(source: BenchmarkSource, member: str) -> bytes | None:
    """Bytes of one benchmark image by member name (for the audit grid); None for hash-only sources."""
    if source.kind == HASHES:
        return None
    if source.kind == FOLDER:
        for file in source.files:
            if source.member_of(file) == member:
                return read_file(file)
        return None
    for file in source.files:
        for key, data in iter_tar_images(file):
            if key == member:
                return data
    return None
