"""Every stored sample of a dataset with what the stages said of it, in memory, for the explorer.

One row per sample stored in ``raw/`` (a success): its caption and URL from the raw shard table, its
CLIP score from ``scores/``, its fate from ``final/_selection/`` (when build_shards has finished)
and its dedup verdict from ``dedup/matches.parquet``. Columns are NumPy/Arrow arrays, so a filter
is a few vector operations; about 200 bytes a sample (10M samples: about 2 GB).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.dataset import Dataset, shard_name
from pipeline.errors import UserInputError
from schemas.raw_shard import STATUS_SUCCESS

log = logging.getLogger(__name__)

#: What ``Filters.status`` may be.
STATUSES = ("all", "kept", "dropped")
_RAW_COLUMNS = ["uid", "url", "caption", "status", "width", "height", "original_width", "original_height"]


@dataclass(frozen=True)
class Filters:
    """Which samples a page shows; every field narrows the selection, the defaults keep everything."""

    min_score: float | None = None
    max_score: float | None = None
    #: "kept" or "dropped" by build_shards (both need its selection), or "all".
    status: str = "all"
    #: One drop reason of build_shards' selection (``schemas.selection.DROP_REASONS``).
    reason: str = ""
    #: The uid of a dedup group's kept sample: the group's members (that sample included).
    group: str = ""
    #: Only samples in a within-corpus duplicate group or matched to a benchmark.
    duplicates_only: bool = False
    #: Only captions the score job identified as this language (ISO 639-1, ``und``: no letter).
    language: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise UserInputError(f"status must be one of {', '.join(STATUSES)}, got {self.status!r}")
        if self.min_score is not None and self.max_score is not None and self.min_score > self.max_score:
            raise UserInputError(
                f"the minimum CLIP score {self.min_score} is above the maximum {self.max_score}"
            )

    @property
    def active(self) -> bool:
        return self != Filters()


@dataclass
class Catalog:
    """The dataset's samples; row ``i`` of every column is one sample."""

    table: pa.Table
    #: CLIP score per row (NaN when unscored).
    scores: np.ndarray
    #: Caption language per row from the score job ("" when unscored).
    languages: np.ndarray
    #: Drop reason of build_shards per row ("" kept; None when build_shards has not run).
    reasons: np.ndarray
    #: Dedup: reason from matches.parquet ("" none) and the group's kept uid (or benchmark id).
    dedup_reasons: np.ndarray
    groups: np.ndarray
    has_selection: bool
    has_dedup: bool
    _members: dict[str, list[int]] = field(default_factory=dict, repr=False)

    @property
    def size(self) -> int:
        return self.table.num_rows

    def rows_of(self, uids: list[str]) -> np.ndarray:
        """Row numbers of ``uids`` (-1 for a uid not in the catalog), in the same order."""
        found = pc.index_in(pa.array(uids, pa.string()), self.table.column("uid"))
        return np.asarray(found.fill_null(-1), dtype=np.int64)

    def row(self, uid: str) -> dict[str, Any] | None:
        """Everything known of one sample, or None for an unknown uid."""
        index = int(self.rows_of([uid])[0])
        return None if index < 0 else self.record(index)

    def record(self, index: int) -> dict[str, Any]:
        row = self.table.slice(index, 1).to_pylist()[0]
        score = float(self.scores[index])
        row["clip_score"] = None if np.isnan(score) else score
        row["language"] = self.languages[index] or None
        row["reason"] = self.reasons[index]
        row["dedup_reason"] = self.dedup_reasons[index]
        row["group"] = self.groups[index]
        return row

    def group_members(self, group: str) -> list[int]:
        """Rows of a dedup group: the samples dropped as its duplicates, and its kept sample."""
        return self._members.get(group, [])

    def reasons_present(self) -> list[str]:
        """The drop reasons that occur, in order of first appearance in the schema's list."""
        from schemas.selection import DROP_REASONS

        present = {r for r in self.reasons if r}
        return [r for r in DROP_REASONS if r in present]

    def languages_present(self) -> list[str]:
        """The caption languages that occur, most frequent first."""
        values, counts = np.unique(self.languages[self.languages != ""], return_counts=True)
        return [str(v) for v in values[np.argsort(-counts, kind="stable")]]

    def mask(self, filters: Filters) -> np.ndarray:
        """Rows that pass ``filters``, as a boolean mask."""
        keep = np.ones(self.size, dtype=bool)
        if filters.min_score is not None:
            keep &= self.scores >= filters.min_score  # NaN (unscored) fails both bounds
        if filters.max_score is not None:
            keep &= self.scores <= filters.max_score
        if filters.status != "all" or filters.reason:
            if not self.has_selection:
                raise UserInputError(
                    "kept/dropped filters need build_shards' selection (final/_selection), and "
                    "build_shards has not finished on this dataset"
                )
            if filters.status == "kept":
                keep &= self.reasons == ""
            elif filters.status == "dropped":
                keep &= self.reasons != ""
            if filters.reason:
                keep &= self.reasons == filters.reason
        if filters.group:
            in_group = np.zeros(self.size, dtype=bool)
            in_group[self.group_members(filters.group)] = True
            keep &= in_group
        if filters.duplicates_only:
            keep &= self.groups != ""
        if filters.language:
            keep &= self.languages == filters.language
        return keep


def load_catalog(dataset: Dataset) -> Catalog:
    """Read the dataset's raw tables, scores, selection and dedup matches into one catalog."""
    shards = dataset.raw.complete_indices()
    if not shards:
        raise UserInputError(
            f"{dataset.display()} has no complete raw shards: run spark-submit jobs/download.py first"
        )
    parts = []
    for index in shards:
        shard = dataset.raw.shard(index)
        table = shard.table(_RAW_COLUMNS)
        table = table.filter(pc.equal(table.column("status"), STATUS_SUCCESS)).drop(["status"])
        parts.append(table.append_column("shard", pa.array(np.full(table.num_rows, index, np.int32))))
    table = pa.concat_tables(parts)
    log.info("explorer: %d stored samples in %d raw shards", table.num_rows, len(shards))
    uids = table.column("uid")

    scores = np.full(table.num_rows, np.nan, np.float32)
    languages = np.full(table.num_rows, "", object)
    for index in dataset.scores.complete_indices():
        scored = dataset.scores.shard(index).table(["uid", "clip_score", "language"])
        rows = np.asarray(pc.index_in(scored.column("uid"), uids).fill_null(-1), np.int64)
        found = rows >= 0
        scores[rows[found]] = scored.column("clip_score").to_numpy()[found]
        languages[rows[found]] = np.asarray(scored.column("language").to_pylist(), object)[found]

    reasons = np.full(table.num_rows, None, object)
    has_selection = dataset.final.manifest() is not None
    if has_selection:
        reasons[:] = ""
        for index in dataset.final.selection_indices():
            chosen = dataset.final.selection(index).read(["uid", "reason"])
            rows = np.asarray(pc.index_in(chosen.column("uid"), uids).fill_null(-1), np.int64)
            found = rows >= 0
            values = np.asarray(chosen.column("reason").fill_null("").to_pylist(), object)
            reasons[rows[found]] = values[found]

    dedup_reasons = np.full(table.num_rows, "", object)
    groups = np.full(table.num_rows, "", object)
    members: dict[str, list[int]] = {}
    has_dedup = dataset.dedup.matches.exists()  # what build_shards reads, too
    if has_dedup:
        matches = dataset.dedup.matches.read(["uid", "reason", "match_id"])
        rows = np.asarray(pc.index_in(matches.column("uid"), uids).fill_null(-1), np.int64)
        found = rows >= 0
        dedup_reasons[rows[found]] = np.asarray(matches.column("reason").to_pylist(), object)[found]
        group_ids = np.asarray(matches.column("match_id").to_pylist(), object)
        groups[rows[found]] = group_ids[found]
        # A within-corpus group's id is the uid of its kept sample, which belongs to the group too
        # (listed first); a benchmark id is no sample of the corpus.
        kept = np.asarray(pc.index_in(pa.array(group_ids, pa.string()), uids).fill_null(-1), np.int64)
        for row, group, kept_row in zip(rows[found], group_ids[found], kept[found], strict=True):
            if group not in members:
                members[group] = [int(kept_row)] if kept_row >= 0 else []
                if kept_row >= 0 and groups[kept_row] == "":
                    groups[kept_row] = group
            members[group].append(int(row))
    return Catalog(
        table, scores, languages, reasons, dedup_reasons, groups, has_selection, has_dedup, members
    )


def shard_label(index: int) -> str:
    """``raw/00042``: where a sample's image is stored."""
    return f"raw/{shard_name(index)}"
