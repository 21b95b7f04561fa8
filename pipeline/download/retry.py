"""``--retry-failed``: fetch a complete raw shard's failed rows again and rewrite the shard in place.

Only the rows whose failure ``--retry-failed CLASSES`` selects are fetched
(:mod:`pipeline.download.retry_classes`); every other row, and every stored sample (its tar
members copied byte for byte), is kept. The new tar and parquet replace the old ones through a
journal (:mod:`pipeline.replace`), so a kill leaves the old complete shard or the new one.

The new marker keeps the shard's fingerprint: the shard is still the download of the same input
rows with the same options, so a plain rerun finds it complete and leaves it alone. Its content
(counts, seconds, the ``retries`` history) changes, so its :func:`~pipeline.runner.marker_token`
does, and scores and centre hashes built on the old shard are redone by their next run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any

import pyarrow as pa

from pipeline.dataset import Dataset, RawShard
from pipeline.download.options import DownloadOptions
from pipeline.download.retry_classes import RetrySelection, parse_retry_classes
from pipeline.replace import ShardReplace, pending_journals, roll_forward
from pipeline.runner import FINGERPRINT_KEY
from pipeline.shards.raw_writer import RawShardWriter, SampleRecord, shard_stats
from schemas.raw_shard import RAW_SHARD_SCHEMA, STATUS_SUCCESS

log = logging.getLogger(__name__)


def finish_replacements(dataset: Dataset) -> int:
    """Roll forward every shard replacement a killed run left (before temporaries are removed)."""
    done = 0
    for name in pending_journals(dataset.storage, dataset.raw.folder):
        stem = name[1:].split("_", 1)[0]
        if stem.isdigit() and roll_forward(dataset.storage, dataset.raw.shard(int(stem)).output):
            log.info("finished the rewrite of raw shard %s that an interrupted run left", stem)
            done += 1
    return done


def retry_counts(marker: dict[str, Any], retried: Counter[str], recovered: Counter[str]) -> dict[str, Any]:
    """A task's result: the shard's marker plus what this run retried and recovered, per class."""
    return {**marker, "retried": dict(sorted(retried.items())), "recovered": dict(sorted(recovered.items()))}


class _Outcomes:
    """Collects the new outcome of each retried row (the writer interface the fetch loop uses)."""

    def __init__(self) -> None:
        self.records: dict[int, SampleRecord] = {}

    def add(self, record: SampleRecord) -> None:
        self.records[record.row["row_index"]] = record


def retry_shard(
    dataset: Dataset,
    shard: RawShard,
    marker: dict[str, Any],
    inputs: str,
    options: DownloadOptions,
    state: Any = None,
) -> dict[str, Any]:
    """Retry the selected failed rows of a complete shard; rewrite it when any was selected.

    ``state``: the worker's fetcher state (opt-out caches, host pacing), as a download task uses.
    Returns the (new or unchanged) marker with ``resumed`` and this run's ``retried`` and
    ``recovered`` counts per error class.
    """
    selection = parse_retry_classes(options.retry_failed)
    rows = shard.table().to_pylist()
    todo = [row for row in rows if selection.row_matches(row)]
    if not todo:
        return {**retry_counts(marker, Counter(), Counter()), "resumed": True}
    started = time.time()
    outcomes = _fetch_again(todo, options, state)
    retried = Counter(row["error_class"] for row in todo)
    recovered = Counter(
        row["error_class"] for row in todo if outcomes[row["row_index"]].row["status"] == STATUS_SUCCESS
    )
    log.info("raw shard %s: %d rows retried, %d recovered", shard.name, len(todo), sum(recovered.values()))
    new_marker = _rewrite(
        dataset, shard, marker, rows, outcomes, bool(recovered), options.image.extension, selection
    )
    new_marker.update({FINGERPRINT_KEY: inputs, "seconds": round(time.time() - started, 3)})
    return {
        **retry_counts(new_marker, retried, recovered),
        "resumed": False,
        "new_rows": len(todo),  # what this run did, for the summary's throughput
        "new_successes": sum(recovered.values()),
    }


def _fetch_again(rows: list[dict[str, Any]], options: DownloadOptions, state: Any) -> dict[int, SampleRecord]:
    # Imported here: the shard worker imports this module.
    from pipeline.download.shard_worker import _download_rows

    inputs = [
        {
            "uid": r["uid"],
            "row_index": r["row_index"],
            "url": r["url"],
            "caption": r["caption"],
            "extra": r["extra"],
            "ingest_error": None,
            "ingest_message": None,
        }
        for r in rows
    ]
    collected = _Outcomes()
    asyncio.run(_download_rows(inputs, {}, options, collected, state))  # type: ignore[arg-type]
    return collected.records


def _rewrite(
    dataset: Dataset,
    shard: RawShard,
    marker: dict[str, Any],
    rows: list[dict[str, Any]],
    outcomes: dict[int, SampleRecord],
    recovered: bool,
    image_ext: str,
    selection: RetrySelection,
) -> dict[str, Any]:
    """Write the new parquet (and, when a row was recovered, the new tar) and replace the shard."""
    replace = ShardReplace(dataset.storage, shard.output)
    try:
        new_rows = sorted(
            (outcomes[r["row_index"]].row if r["row_index"] in outcomes else r for r in rows),
            key=lambda r: r["row_index"],
        )
        if recovered:
            _write_tar_and_parquet(replace, shard, rows, outcomes, image_ext)
        else:  # the tar holds the same samples: only the parquet changes
            replace.write_parquet(
                pa.Table.from_pylist(new_rows, schema=RAW_SHARD_SCHEMA), *shard.table_file.parts
            )
        history = [*marker.get("retries", []), _round(rows, outcomes, selection)]
        content = {
            **{k: v for k, v in marker.items() if k not in ("resumed", "retried", "recovered")},
            **shard_stats(new_rows),
            "shard": shard.name,
            "retries": history,
        }
        return replace.commit(content)
    except BaseException:
        replace.abort()  # nothing once the journal is written: the next run rolls it forward
        raise


def _write_tar_and_parquet(
    replace: ShardReplace,
    shard: RawShard,
    rows: list[dict[str, Any]],
    outcomes: dict[int, SampleRecord],
    image_ext: str,
) -> None:
    """The old samples (tar order, bytes as stored), then the recovered ones (row order)."""
    writer = RawShardWriter(replace, shard, image_ext)
    try:
        stored = {r["uid"]: r for r in rows if r["status"] == STATUS_SUCCESS}
        copied: set[str] = set()
        for sample in shard.tar.samples():
            row = stored.get(sample.key)
            if row is not None and sample.key not in copied:
                writer.copy(row, sample.members)
                copied.add(sample.key)
        missing = sorted(set(stored) - copied)
        if missing:
            raise RuntimeError(
                f"{shard.tar.path} lacks {len(missing)} samples its parquet lists as stored (e.g. "
                f"{missing[0]}): the shard is damaged; delete raw/{shard.name}_stats.json to redownload it"
            )
        for row in sorted(rows, key=lambda r: r["row_index"]):
            if row["status"] != STATUS_SUCCESS:
                writer.add(outcomes.get(row["row_index"], SampleRecord(row)))
    finally:
        writer.close()
    writer.finish()  # the parquet, every row in row order


def _round(
    rows: list[dict[str, Any]], outcomes: dict[int, SampleRecord], selection: RetrySelection
) -> dict[str, Any]:
    """One entry of the marker's ``retries`` history."""
    retried = Counter(r["error_class"] for r in rows if r["row_index"] in outcomes)
    recovered = Counter(
        r["error_class"]
        for r in rows
        if r["row_index"] in outcomes and outcomes[r["row_index"]].row["status"] == STATUS_SUCCESS
    )
    return {
        "classes": list(selection.tokens),
        "retried": dict(sorted(retried.items())),
        "recovered": dict(sorted(recovered.items())),
        "at": round(time.time()),
    }
