"""The candidates of one raw shard: every downloaded sample with what the rules look at.

One Spark task per raw shard reads ``raw/NNNNN.parquet`` (sizes, caption), ``scores/NNNNN.parquet``
(clip_score) and the member headers of ``raw/NNNNN.tar``, so a final-shard writer can later read
a sample's bytes with one ranged read instead of scanning the tar.
"""

from __future__ import annotations

import math
import tarfile
from dataclasses import dataclass
from typing import BinaryIO

import pyarrow.parquet as pq

from pipeline.build.shard_plan import shuffle_key
from pipeline.dataset import Dataset
from pipeline.score.shard_scorer import SCORES_DIR
from pipeline.shards.raw_writer import RAW_DIR
from schemas.contract import check_schema
from schemas.raw_shard import RAW_SHARD_SCHEMA, STATUS_SUCCESS
from schemas.scores import SCORES_SCHEMA

# Column order of a candidate tuple (and of the Spark DataFrame built from them).
CANDIDATE_COLUMNS = (
    "uid",
    "raw_shard",
    "row_index",
    "clip_score",
    "caption_length",
    "original_width",
    "original_height",
    "sort_key",
    "offset",
    "length",
    "members",
)


@dataclass(frozen=True)
class TarEntry:
    """Where one sample's members lie in a tar: one contiguous byte range."""

    offset: int  # first header byte of the sample's first member
    length: int  # up to the end of its last member's data
    members: str  # "ext:data_offset:size,..." with offsets relative to ``offset``


def index_tar(handle: BinaryIO) -> dict[str, TarEntry]:
    """Byte ranges of every sample (``KEY.EXT`` members grouped by KEY) of a seekable tar.

    Members are sliced by their own offsets, so a range stays correct even when another tool
    interleaved samples (it only reads more bytes); corpusforge writes a sample's members together.
    """
    grouped: dict[str, list[tarfile.TarInfo]] = {}
    with tarfile.open(fileobj=handle, mode="r:") as tar:
        for member in tar:
            base = member.name.rsplit("/", 1)[-1]
            if member.isfile() and "." in base:
                grouped.setdefault(base.split(".", 1)[0], []).append(member)
    index = {}
    for key, members in grouped.items():
        start = min(m.offset for m in members)
        end = max(m.offset_data + m.size for m in members)
        layout = ",".join(
            f"{m.name.rsplit('/', 1)[-1].split('.', 1)[1]}:{m.offset_data - start}:{m.size}" for m in members
        )
        index[key] = TarEntry(start, end - start, layout)
    return index


def parse_members(layout: str) -> list[tuple[str, int, int]]:
    """``(ext, offset, size)`` of each member from a :class:`TarEntry` layout string."""
    out = []
    for part in layout.split(","):
        ext, offset, size = part.rsplit(":", 2)
        out.append((ext, int(offset), int(size)))
    return out


def shard_candidates(dataset_url: str, shard: int, seed: int, scored: bool) -> list[tuple]:
    """Candidate tuples (``CANDIDATE_COLUMNS``) of every success in raw shard ``shard``."""
    dataset = Dataset(dataset_url)
    name = dataset.shard_name(shard)
    parquet_path = dataset.path(RAW_DIR, f"{name}.parquet")
    with dataset.fs.open(parquet_path, "rb") as handle:
        table = pq.read_table(handle)
    check_schema(table.schema, RAW_SHARD_SCHEMA, parquet_path)
    columns = [
        "uid",
        "row_index",
        "caption",
        "status",
        "original_width",
        "original_height",
        "width",
        "height",
    ]
    rows = [r for r in table.select(columns).to_pylist() if r["status"] == STATUS_SUCCESS]
    scores: dict[str, float] = {}
    if scored:
        scores_path = dataset.path(SCORES_DIR, f"{name}.parquet")
        with dataset.fs.open(scores_path, "rb") as handle:
            scores_table = pq.read_table(handle)
        check_schema(scores_table.schema, SCORES_SCHEMA, scores_path)
        values = scores_table.column("clip_score").to_pylist()
        # A NaN score (a broken image or model) would pass every comparison Spark makes: unscored.
        scores = {
            uid: value
            for uid, value in zip(scores_table.column("uid").to_pylist(), values, strict=True)
            if value is not None and not math.isnan(value)
        }
    tar_path = dataset.path(RAW_DIR, f"{name}.tar")
    with dataset.fs.open(tar_path, "rb") as handle:
        index = index_tar(handle)
    out = []
    for row in rows:
        entry = index.get(row["uid"])
        if entry is None:
            raise ValueError(
                f"{tar_path} has no members for uid {row['uid']}, a success in {parquet_path}: "
                "the raw shard is damaged; delete its _stats.json and run jobs/download.py again"
            )
        width = row["original_width"] if row["original_width"] is not None else row["width"]
        height = row["original_height"] if row["original_height"] is not None else row["height"]
        out.append(
            (
                row["uid"],
                shard,
                row["row_index"],
                scores.get(row["uid"]),
                len((row["caption"] or "").strip()),
                width,
                height,
                shuffle_key(seed, row["uid"]),
                entry.offset,
                entry.length,
                entry.members,
            )
        )
    return out
