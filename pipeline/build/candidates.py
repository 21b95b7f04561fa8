"""The candidates of one raw shard: every downloaded sample with what the rules look at.

One Spark task per raw shard reads ``raw/NNNNN.parquet`` (sizes, caption: repaired with ftfy and
measured by the caption rules), ``scores/NNNNN.parquet`` (clip_score, language) and the member
headers of ``raw/NNNNN.tar``, so a final-shard writer can later read a sample's bytes with one
ranged read instead of scanning the tar.
"""

from __future__ import annotations

import math

from pipeline.build.shard_plan import shuffle_key
from pipeline.captions.repair import repair_caption
from pipeline.captions.rules import CAPTION_FEATURES, caption_features
from pipeline.dataset import Dataset

# Column order of a candidate tuple (and of the Spark DataFrame built from them).
CANDIDATE_COLUMNS = (
    "uid",
    "raw_shard",
    "row_index",
    "clip_score",
    "original_width",
    "original_height",
    "sort_key",
    "offset",
    "length",
    "members",
    "language",
    # The caption rules' measures of the ftfy-repaired caption (pipeline/captions/rules.py).
    *CAPTION_FEATURES,
)


def shard_candidates(dataset: Dataset, shard: int, seed: int, scored: bool) -> list[tuple]:
    """Candidate tuples (``CANDIDATE_COLUMNS``) of every success in raw shard ``shard``."""
    raw = dataset.raw.shard(shard)
    columns = ["uid", "row_index", "caption", "original_width", "original_height", "width", "height"]
    rows = raw.successes(columns)
    scores: dict[str, float] = {}
    languages: dict[str, str] = {}
    if scored:
        table = dataset.scores.shard(shard).table(["uid", "clip_score", "language"])
        uids = table.column("uid").to_pylist()
        # A NaN score (a broken image or model) would pass every comparison Spark makes: unscored.
        scores = {
            uid: value
            for uid, value in zip(uids, table.column("clip_score").to_pylist(), strict=True)
            if value is not None and not math.isnan(value)
        }
        languages = dict(zip(uids, table.column("language").to_pylist(), strict=True))
    index = raw.tar.index()
    out = []
    for row in rows:
        entry = index.get(row["uid"])
        if entry is None:
            raise ValueError(
                f"{raw.tar.path} has no members for uid {row['uid']}, a success in {raw.table_file.path}: "
                "the raw shard is damaged; delete its _stats.json and run jobs/download.py again"
            )
        caption, _ = repair_caption(row["caption"] or "")
        width = row["original_width"] if row["original_width"] is not None else row["width"]
        height = row["original_height"] if row["original_height"] is not None else row["height"]
        out.append(
            (
                row["uid"],
                shard,
                row["row_index"],
                scores.get(row["uid"]),
                width,
                height,
                shuffle_key(seed, row["uid"]),
                entry.offset,
                entry.length,
                entry.layout(),
                languages.get(row["uid"]),
                *caption_features(caption),
            )
        )
    return out
