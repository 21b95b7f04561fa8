"""An img2dataset output folder: its complete shards, each in one of img2dataset's three layouts.

img2dataset (1.47) writes per shard ``NNNNN.parquet`` (one row per input row: the saved input
columns, ``key``, ``status``, ``error_message``, sizes, ``exif``, a hash) and the images as
``NNNNN.tar`` (``webdataset``), in a folder ``NNNNN/`` (``files``) or in the parquet's own
``jpg``/``png``/``webp`` column (``parquet``); ``NNNNN_stats.json`` is written last, so a shard
without it is incomplete (img2dataset redoes it on its next run) and is not imported.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pyarrow.parquet as pq

from pipeline.errors import UserInputError
from pipeline.storage import Storage

log = logging.getLogger(__name__)

WEBDATASET = "webdataset"
FILES = "files"
PARQUET = "parquet"
IMAGE_COLUMNS = ("jpg", "png", "webp")
STATS_SUFFIX = "_stats.json"


@dataclass(frozen=True)
class SourceShard:
    """One complete img2dataset shard: its number, layout, image extension and file versions."""

    index: int
    name: str  # NNNNN as img2dataset wrote it (oom_shard_count digits)
    layout: str
    image_ext: str | None  # None: no image in the shard (no success)
    versions: tuple[tuple[str, int, str], ...]  # (file name, size, version key): the fingerprint

    @property
    def parquet(self) -> str:
        return f"{self.name}.parquet"

    @property
    def tar(self) -> str:
        return f"{self.name}.tar"

    @property
    def stats(self) -> str:
        return f"{self.name}{STATS_SUFFIX}"


@dataclass(frozen=True)
class Source:
    """The complete shards of an img2dataset output folder, and the incomplete ones left out."""

    url: str
    shards: tuple[SourceShard, ...]
    incomplete: tuple[str, ...]

    @property
    def storage(self) -> Storage:
        return Storage(self.url)

    @property
    def image_ext(self) -> str:
        """The extension of every stored image (jpg when no shard holds one)."""
        return next((s.image_ext for s in self.shards if s.image_ext), "jpg")


def find_source(url: str) -> Source:
    """List ``url``'s complete img2dataset shards; raise ``UserInputError`` naming what is wrong."""
    storage = Storage(url)
    if not storage.isdir():
        raise UserInputError(f"--source {url}: not a folder")
    names = storage.names()
    stems = {
        n[: -len(STATS_SUFFIX)]
        for n in names
        if n.endswith(STATS_SUFFIX) and n[: -len(STATS_SUFFIX)].isdigit()
    }
    data_stems = {n.split(".", 1)[0] for n in names if n.split(".", 1)[0].isdigit()}
    incomplete = tuple(sorted(data_stems - stems))
    if incomplete:
        log.warning(
            "%s: %d shards have no _stats.json (img2dataset had not finished them) and are left out: %s",
            storage.display(),
            len(incomplete),
            ", ".join(incomplete[:10]) + (" ..." if len(incomplete) > 10 else ""),
        )
    if not stems:
        raise UserInputError(
            f"--source {storage.display()}: no complete img2dataset shard (NNNNN_stats.json with "
            "NNNNN.parquet) in it"
        )
    shards = []
    by_index: dict[int, str] = {}
    for stem in sorted(stems):
        index = int(stem)
        if index in by_index:
            raise UserInputError(
                f"--source {storage.display()}: shards {by_index[index]} and {stem} have one number"
            )
        by_index[index] = stem
        shards.append(_shard(storage, stem, set(names)))
    exts = {s.image_ext for s in shards if s.image_ext}
    if len(exts) > 1:
        raise UserInputError(
            f"--source {storage.display()}: images of several formats ({', '.join(sorted(exts))}); "
            "a dataset stores one (import each part into its own dataset)"
        )
    return Source(url, tuple(shards), incomplete)


def _shard(storage: Storage, stem: str, names: set[str]) -> SourceShard:
    where = storage.display(stem)
    if f"{stem}.tfrecord" in names:
        raise UserInputError(f"{where}.tfrecord: img2dataset's tfrecord format is not imported (TensorFlow)")
    if f"{stem}.parquet" not in names:
        raise UserInputError(f"{where}{STATS_SUFFIX} has no {stem}.parquet: the shard's rows are unknown")
    with storage.open(f"{stem}.parquet") as handle:
        parquet_columns = pq.read_schema(handle).names
    files = [f"{stem}.parquet", f"{stem}{STATS_SUFFIX}"]
    if f"{stem}.tar" in names:
        layout, ext = WEBDATASET, _tar_image_ext(storage, stem)
        files.append(f"{stem}.tar")
    elif stem in names and storage.isdir(stem):
        layout, ext = FILES, _folder_image_ext(storage, stem)
    else:
        found = [c for c in IMAGE_COLUMNS if c in parquet_columns]
        if not found:
            raise UserInputError(
                f"{where}: no {stem}.tar, no {stem}/ folder and no image column ({', '.join(IMAGE_COLUMNS)}) "
                f"in {stem}.parquet: not an img2dataset webdataset, files or parquet shard"
            )
        layout, ext = PARQUET, found[0]
    for column in ("key", "url", "status"):
        if column not in parquet_columns:
            raise UserInputError(f"{where}.parquet has no {column!r} column: not img2dataset's metadata")
    versions = tuple(_version(storage, name) for name in files)
    return SourceShard(int(stem), stem, layout, ext, versions)


def _version(storage: Storage, name: str) -> tuple[str, int, str]:
    info: dict[str, Any] = storage.fs.info(storage.path(name))
    return (name, int(info.get("size") or 0), str(storage.fs.ukey(storage.path(name))))


def _tar_image_ext(storage: Storage, stem: str) -> str | None:
    from pipeline.shards.tar_reader import TarStream

    with storage.open(f"{stem}.tar") as handle:
        for member, _ in TarStream(handle, storage.display(f"{stem}.tar"), seek=True).members(
            lambda k, e: False
        ):
            if member.ext in IMAGE_COLUMNS:
                return member.ext
    return None  # no success in the shard: any extension will do


def _folder_image_ext(storage: Storage, stem: str) -> str | None:
    for name in storage.names(stem):
        ext = name.rsplit(".", 1)[-1]
        if ext in IMAGE_COLUMNS:
            return ext
    return None
