"""Writing one final shard: the unit of work of a Spark task, committed by the shard runner.

The tar is written under a temporary name while its sha256 is computed on the fly; the runner
renames it into place and writes ``final/NNNNNN_stats.json`` (count, bytes, sha256) last. The
fingerprint is the digest of the planned uids in order: a shard whose marker names the same plan
is complete and skipped; anything else is rewritten from scratch. Tars are byte-reproducible
(fixed member metadata), so a rewrite of the same plan gives the same sha256.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, BinaryIO

from pipeline.build.shard_plan import plan_digest
from pipeline.captions.repair import repair_caption
from pipeline.dataset import Dataset
from pipeline.runner import ShardCommit, completed, run_shard
from pipeline.shards.tar_reader import SampleRange
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
    members: str  # SampleRange.layout()
    clip_score: float | None

    @property
    def range(self) -> SampleRange:
        return SampleRange.from_layout(self.offset, self.length, self.members)


def completed_shard(dataset: Dataset, index: int, digest: str) -> dict[str, Any] | None:
    """The marker of final shard ``index`` if it is complete and holds exactly the planned samples."""
    return completed(dataset.storage, dataset.final.shard(index).output, digest)


def write_final_shard(dataset: Dataset, index: int, samples: list[PlannedSample]) -> dict[str, Any]:
    """Write final shard ``index`` with ``samples`` in position order unless already complete."""
    samples = sorted(samples, key=lambda s: s.position)
    shard = dataset.final.shard(index)

    def work(commit: ShardCommit) -> dict[str, Any]:
        with _RawReader(dataset) as raw, commit.open(*shard.tar.parts) as handle:
            hashing = _HashingWriter(handle)
            tar = TarWriter(hashing)  # type: ignore[arg-type]
            for sample in samples:
                tar.write(sample.uid, _final_members(sample, raw.read(sample)))
            tar.close()
        return {
            "shard": shard.tar_name,
            "count": len(samples),
            "bytes": hashing.bytes,
            "sha256": hashing.sha256.hexdigest(),
        }

    return run_shard(dataset.storage, shard.output, plan_digest(s.uid for s in samples), work)


def _final_members(sample: PlannedSample, members: dict[str, bytes]) -> dict[str, bytes]:
    """KEY.<image ext>, KEY.txt and KEY.json (the raw record plus clip_score and raw_shard).

    The caption is the ftfy-repaired one (``pipeline/captions/repair.py``), the text the score
    job scored and the caption rules judged: KEY.txt and KEY.json's ``caption`` hold it, and
    KEY.json keeps the downloaded text as ``original_caption`` when the repair changed it.
    """
    out: dict[str, bytes] = {}
    meta: dict[str, Any] = {}
    for ext, body in members.items():
        if ext == "json":
            meta = json.loads(body)
        else:
            out[ext] = body
    meta.pop("status", None)  # every final sample is a success
    if "txt" in out:
        original = out["txt"].decode("utf-8", errors="replace")
        caption, repaired = repair_caption(original)
        if repaired:
            out["txt"] = caption.encode("utf-8")
            meta.update(caption=caption, original_caption=original)
    meta.update(uid=sample.uid, clip_score=sample.clip_score, raw_shard=sample.raw_shard)
    out["json"] = json.dumps(meta, ensure_ascii=False, sort_keys=True).encode("utf-8")
    return out


class _RawReader:
    """Ranged reads from the raw tars, keeping the most recently used ones open."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.handles: OrderedDict[int, BinaryIO] = OrderedDict()

    def read(self, sample: PlannedSample) -> dict[str, bytes]:
        handle = self.handles.pop(sample.raw_shard, None)
        if handle is None:
            if len(self.handles) >= OPEN_RAW_FILES:
                self.handles.popitem(last=False)[1].close()
            handle = self.dataset.raw.shard(sample.raw_shard).tar.open()
        self.handles[sample.raw_shard] = handle
        return self.dataset.raw.shard(sample.raw_shard).tar.read_range(handle, sample.range)

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
