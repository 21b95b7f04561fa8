"""Writing one final shard: the unit of work of a Spark task, with the commit protocol.

The tar is written under a temporary name while its sha256 is computed on the fly, renamed into
place, and ``final/NNNNNN_stats.json`` (count, bytes, sha256 and the digest of the planned uids) is
written last. A shard whose marker names the same planned uids is complete and skipped; anything
else is rewritten from scratch. Tars are byte-reproducible (fixed member metadata), so a rewrite of
the same plan gives the same sha256.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, BinaryIO

from pipeline.build.candidates import parse_members
from pipeline.build.shard_plan import FINAL_DIR, final_shard_name, plan_digest
from pipeline.dataset import Dataset
from pipeline.shards.raw_writer import RAW_DIR
from pipeline.shards.tar_writer import TarWriter

OPEN_RAW_FILES = 32  # raw tars kept open per task (samples come from every raw shard)


@dataclass(frozen=True)
class PlannedSample:
    """One kept sample and where its bytes are: a row of the shard plan."""

    position: int
    uid: str
    raw_shard: int
    offset: int
    length: int
    members: str
    clip_score: float | None


def marker_name(index: int) -> str:
    return f"{final_shard_name(index)}_stats.json"


def tar_name(index: int) -> str:
    return f"{final_shard_name(index)}.tar"


def completed_marker(dataset: Dataset, index: int, digest: str) -> dict[str, Any] | None:
    """The marker of shard ``index`` if it is complete and holds exactly the planned samples."""
    if not dataset.exists(FINAL_DIR, marker_name(index)):
        return None
    marker = dataset.read_json(FINAL_DIR, marker_name(index))
    if marker.get("plan_digest") != digest or not dataset.exists(FINAL_DIR, tar_name(index)):
        return None
    return marker


def write_final_shard(dataset_url: str, index: int, samples: list[PlannedSample]) -> dict[str, Any]:
    """Write final shard ``index`` with ``samples`` in position order unless already complete."""
    dataset = Dataset(dataset_url)
    samples = sorted(samples, key=lambda s: s.position)
    digest = plan_digest(s.uid for s in samples)
    done = completed_marker(dataset, index, digest)
    if done is not None:
        return {**done, "resumed": True}
    started = time.time()
    final = dataset.path(FINAL_DIR, tar_name(index))
    temp = dataset.temp_path(final)
    with _RawReader(dataset) as raw, dataset.fs.open(temp, "wb") as handle:
        hashing = _HashingWriter(handle)
        tar = TarWriter(hashing)  # type: ignore[arg-type]
        for sample in samples:
            tar.write(sample.uid, _final_members(sample, raw.read(sample)))
        tar.close()
    dataset.fs.mv(temp, final)
    marker = {
        "shard": tar_name(index),
        "count": len(samples),
        "bytes": hashing.bytes,
        "sha256": hashing.sha256.hexdigest(),
        "plan_digest": digest,
        "seconds": round(time.time() - started, 3),
    }
    dataset.write_json_atomic(marker, FINAL_DIR, marker_name(index))
    return {**marker, "resumed": False}


def _final_members(sample: PlannedSample, data: bytes) -> dict[str, bytes]:
    """KEY.<image ext>, KEY.txt and KEY.json (the raw record plus clip_score and raw_shard)."""
    members: dict[str, bytes] = {}
    meta: dict[str, Any] = {}
    for ext, offset, size in parse_members(sample.members):
        body = data[offset : offset + size]
        if ext == "json":
            meta = json.loads(body)
        else:
            members[ext] = body
    meta.pop("status", None)  # every final sample is a success
    meta.update(uid=sample.uid, clip_score=sample.clip_score, raw_shard=sample.raw_shard)
    members["json"] = json.dumps(meta, ensure_ascii=False, sort_keys=True).encode("utf-8")
    return members


class _RawReader:
    """Ranged reads from the raw tars, keeping the most recently used ones open."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.handles: OrderedDict[int, BinaryIO] = OrderedDict()

    def read(self, sample: PlannedSample) -> bytes:
        handle = self.handles.pop(sample.raw_shard, None)
        if handle is None:
            if len(self.handles) >= OPEN_RAW_FILES:
                self.handles.popitem(last=False)[1].close()
            path = self.dataset.path(RAW_DIR, f"{self.dataset.shard_name(sample.raw_shard)}.tar")
            handle = self.dataset.fs.open(path, "rb")
        self.handles[sample.raw_shard] = handle
        handle.seek(sample.offset)
        data = handle.read(sample.length)
        if len(data) != sample.length:
            raise ValueError(
                f"raw shard {self.dataset.shard_name(sample.raw_shard)}.tar ends before sample {sample.uid}: "
                "it changed since the selection was computed"
            )
        return data

    def __enter__(self) -> _RawReader:
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self.handles.values():
            handle.close()
        self.handles.clear()


class _HashingWriter:
    """A write-only file object that hashes and counts what passes through it."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.sha256 = hashlib.sha256()
        self.bytes = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.bytes += len(data)
        return self.handle.write(data)
