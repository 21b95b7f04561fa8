"""Reading WebDataset tars sample by sample, skipping and counting what cannot be used.

A sample is the run of members sharing a dot-free key: ``KEY.jpg`` (or png/jpeg/webp) and
``KEY.txt``. Member names with ``/``, ``\\`` or ``..``, or without an extension, are refused. A
tar that cannot be opened or is cut short counts as one corrupt shard; the samples read
before the damage are kept, the one being read is dropped. A tar cut between two members is told
from a complete one by its missing end-of-archive marker.
"""

from __future__ import annotations

import logging
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import fsspec

log = logging.getLogger(__name__)

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")


@dataclass
class RawSample:
    """Undecoded bytes of one sample."""

    key: str
    image: bytes
    text: bytes


@dataclass
class Counters:
    """What was skipped so far (one per data stream; summed for reporting)."""

    corrupt_samples: int = 0
    corrupt_shards: int = 0


def valid_member_name(name: str) -> bool:
    """``KEY.EXT`` with a non-empty key free of path separators and ``..``."""
    if "/" in name or "\\" in name or ".." in name or "." not in name:
        return False
    key, ext = name.split(".", 1)
    return bool(key) and bool(ext)


def read_shard(url: str, counters: Counters) -> Iterator[RawSample]:
    """Yield the usable samples of one tar shard; damage is logged and counted, never raised."""
    pending: dict[str, bytes] = {}
    key: str | None = None
    last_refused: str | None = None
    try:
        fs, path = fsspec.core.url_to_fs(url)
        size = fs.size(path)
        with fs.open(path, "rb") as handle, tarfile.open(fileobj=handle, mode="r|*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                name = member.name
                if not valid_member_name(name):
                    refused = name.split(".", 1)[0]
                    if refused != last_refused:
                        counters.corrupt_samples += 1
                        log.warning("%s: refusing member %r (key with a path or '..')", url, name)
                    last_refused = refused
                    continue
                member_key, ext = name.split(".", 1)
                if member_key != key:
                    if key is not None:
                        yield from _complete(key, pending, url, counters)
                    key, pending = member_key, {}
                extracted = tar.extractfile(member)
                data = extracted.read() if extracted is not None else b""
                if len(data) != member.size:  # tarfile's stream mode returns short reads silently
                    raise tarfile.ReadError(f"member {name!r} cut short ({len(data)} of {member.size} bytes)")
                if ext == "txt" or ext.lower() in IMAGE_EXTS:
                    pending[ext.lower()] = data
            # tarfile stops silently when a file is cut between members; the end marker tells.
            cut_between = size is not None and size < tar.offset + 2 * tarfile.BLOCKSIZE
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        counters.corrupt_shards += 1
        if key is not None:
            counters.corrupt_samples += 1  # the sample being read when the tar broke
        log.warning(
            "%s: unreadable or truncated tar (%s: %s); kept the samples before", url, type(exc).__name__, exc
        )
        return
    if key is not None:
        yield from _complete(key, pending, url, counters)  # its members are whole
    if cut_between:
        counters.corrupt_shards += 1
        log.warning("%s: no end-of-archive marker, the tar was cut between two members", url)


def _complete(key: str, members: dict[str, bytes], url: str, counters: Counters) -> Iterator[RawSample]:
    image = next((members[ext] for ext in IMAGE_EXTS if ext in members), None)
    if image is None or "txt" not in members:
        counters.corrupt_samples += 1
        log.warning("%s: sample %r lacks an image or a .txt caption; skipped", url, key)
        return
    yield RawSample(key, image, members["txt"])
