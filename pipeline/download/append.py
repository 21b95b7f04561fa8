"""``--append``: add a URL list to a dataset as new input shards, numbered after the existing ones.

**Layout.** ``_input/_manifest.json`` keeps the first list's ``signature`` (so the raw shards of
a dataset keep their fingerprints when a list is added) and gains ``appended``, one record per
added list, in order::

    {"signature", "first_shard", "shard_count", "first_row", "rows", "ingest_errors",
     "skip_urls", "marked"}

The manifest's ``shard_count``, ``rows`` and ``ingest_errors`` count every list. Shards
``first_shard .. first_shard + shard_count - 1`` hold the added list, cut as the first one is.

**Row indices.** An added list's rows are numbered from ``first_shard * S`` (``S``: the
dataset's ``--samples-per-shard``), so row indices never collide and shard ``k`` still holds
indices in ``[k*S, (k+1)*S)``; after a list whose last shard is short the indices have a gap.
``uid`` is the pair's, as always.

**What is skipped.** Every row of the added list is kept and accounted for in its raw shard;
the ones that must not be fetched are marked in ``_input/NNNNN_dups.json`` like duplicates
within one list: ``duplicate_pair`` when the pair (so the uid) is already in the dataset or
earlier in the list (always skipped: a uid is stored once); ``duplicate_url`` when only the URL
was seen (skipped with ``--skip-duplicate-urls``); with ``--append-skip-urls stored``,
``url_already_stored`` for a URL the dataset stores; with ``--append-skip-urls failed``,
``url_already_failed`` for one whose rows all failed with a class ``--retry-failed`` would not
retry (404, opted out, undecodable, ...). Both URL skips read the raw shards, so they need the
dataset's download to be complete.

**Idempotence.** A list whose signature (files, sizes, version keys, read options) is the
dataset's first or an added one is not added again: ``--append`` of the same list twice adds
nothing. The manifest is written last: an append that was interrupted is redone from the start.

Duplicates are found on the driver with numpy (about 100 bytes per row of the whole dataset) up
to :data:`~pipeline.download.duplicates.DRIVER_LIMIT` rows, with a Spark shuffle above.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from pipeline.dataset import Dataset, shard_indices
from pipeline.download.duplicates import DRIVER_LIMIT, _later_occurrences, mark_duplicates
from pipeline.download.input_shards import input_signature, list_signatures, write_input_shards
from pipeline.download.retry_classes import RETRYABLE, parse_retry_classes
from pipeline.errors import ErrorClass, UserInputError
from pipeline.ingest import IngestOptions
from pipeline.runner import fingerprint
from schemas.raw_shard import STATUS_FAILED, STATUS_SUCCESS

log = logging.getLogger(__name__)

PAIR = ErrorClass.DUPLICATE_PAIR.value
URL = ErrorClass.DUPLICATE_URL.value
STORED = ErrorClass.URL_ALREADY_STORED.value
FAILED = ErrorClass.URL_ALREADY_FAILED.value
PRIORITY = (PAIR, STORED, FAILED, URL)  # a row with several marks gets the first
STORED_SKIP, FAILED_SKIP = "stored", "failed"  # --append-skip-urls values
_STORED, _FAILED = "S", "F"  # what the raw shards say of an earlier row's URL
_DEFAULT_RETRY = parse_retry_classes(RETRYABLE)


def appended_lists(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The records of the lists added with --append, in order (empty for a one-list dataset)."""
    return list(manifest.get("appended", []))


def first_list(manifest: dict[str, Any]) -> tuple[int, int]:
    """``(shards, rows)`` of the dataset's first list."""
    parts = appended_lists(manifest)
    if not parts:
        return manifest["shard_count"], manifest["rows"]
    return parts[0]["first_shard"], manifest["rows"] - sum(p["rows"] for p in parts)


def append_list(
    executor: Any,
    dataset: Dataset,
    options: IngestOptions,
    samples_per_shard: int,
    skip_urls: Iterable[str] = (),
    driver_limit: int = DRIVER_LIMIT,
) -> dict[str, Any]:
    """Add the list ``options`` names to the dataset (unless it is already there); the new manifest."""
    folder = dataset.input
    manifest = folder.manifest()
    if manifest is None:
        raise ValueError("append_list needs a dataset with input shards")
    signature = input_signature(options, samples_per_shard)
    if signature in list_signatures(manifest):
        log.info("--append: %s is already in %s; nothing to add", options.urls, dataset.url)
        return manifest
    recorded = manifest["signature"]["samples_per_shard"]
    if recorded != samples_per_shard:
        raise UserInputError(
            f"--append: {dataset.url} has {recorded} rows per shard; pass --samples-per-shard {recorded}"
        )
    skip = tuple(sorted(set(skip_urls)))
    first = int(manifest["shard_count"])
    if skip:
        _check_download_complete(dataset, first)
    _remove_leftovers(dataset, first)
    first_row = first * samples_per_shard
    end, rows, errors = write_input_shards(dataset, options, samples_per_shard, first, first_row)
    if manifest["rows"] + rows <= driver_limit:
        counts = _marks_on_driver(dataset, first, end, skip)
    else:
        counts = _marks_with_spark(executor, dataset, first, end, skip)
    part = {
        "signature": signature,
        "first_shard": first,
        "shard_count": end - first,
        "first_row": first_row,
        "rows": rows,
        "ingest_errors": dict(sorted(errors.items())),
        "skip_urls": list(skip),
        "marked": counts,
    }
    all_errors = Counter(manifest.get("ingest_errors", {}))
    all_errors.update(errors)
    updated = {
        **manifest,
        "shard_count": end,
        "rows": manifest["rows"] + rows,
        "ingest_errors": dict(sorted(all_errors.items())),
        "appended": [*appended_lists(manifest), part],
    }
    dataset.storage.write_json(updated, *folder.manifest_file)  # the commit point
    log.info(
        "--append: %d rows of %s added as shards %d-%d; marked: %s",
        rows,
        options.urls,
        first,
        end - 1,
        ", ".join(f"{n} {kind}" for kind, n in counts.items()) or "none",
    )
    return updated


def _check_download_complete(dataset: Dataset, shards: int) -> None:
    complete = set(dataset.raw.complete_indices())
    missing = [k for k in range(shards) if k not in complete]
    if missing:
        raise UserInputError(
            f"--append-skip-urls reads what the dataset stored, but {len(missing)} of its {shards} raw "
            f"shards are not complete (e.g. {dataset.raw.shard(missing[0]).name}): run the download "
            "without --append first"
        )


def _remove_leftovers(dataset: Dataset, first: int) -> None:
    """Input shards and marks numbered ``first`` or above: an interrupted append's, redone now."""
    storage, folder = dataset.storage, dataset.input.folder
    names = storage.names(folder)
    stale = {k for k in shard_indices(names, ".parquet") + shard_indices(names, "_dups.json") if k >= first}
    for k in sorted(stale):
        shard = dataset.input.shard(k)
        storage.remove(*shard.table_file.parts)
        storage.remove(*shard.duplicates_file)
    if stale:
        log.info("--append: removed %d input shards of an interrupted append", len(stale))


def _url_key(url: str) -> bytes:
    return hashlib.blake2b(url.encode("utf-8", "surrogatepass"), digest_size=12).digest()


def _permanent(error_class: str | None, http_status: int | None) -> bool:
    """A failure that --retry-failed would not retry by default (and not a bug of ours)."""
    if error_class in (None, ErrorClass.UNEXPECTED.value):
        return False
    return not _DEFAULT_RETRY.matches(error_class, http_status)


def _raw_outcomes(dataset: Dataset, shard: int) -> dict[int, str]:
    """Row index -> ``S`` (stored) or ``F`` (failed for good) of a complete raw shard's rows."""
    table = dataset.raw.shard(shard).table(["row_index", "status", "error_class", "http_status"])
    outcomes = {}
    for row, status, error, http in zip(*(c.to_pylist() for c in table.columns), strict=True):
        if status == STATUS_SUCCESS:
            outcomes[row] = _STORED
        elif status == STATUS_FAILED and _permanent(error, http):
            outcomes[row] = _FAILED
    return outcomes


def _shard_rows(dataset: Dataset, shard: int) -> Iterator[tuple[int, str, str]]:
    """``(row_index, uid, url)`` of a shard's usable rows (rows with an ingest error are never marked)."""
    table = dataset.input.shard(shard).table_file.read(columns=["row_index", "uid", "url", "ingest_error"])
    for row, uid, url, error in zip(*(c.to_pylist() for c in table.columns), strict=True):
        if error is None:
            yield row, uid, url


def _marks_on_driver(dataset: Dataset, first: int, end: int, skip: tuple[str, ...]) -> dict[str, int]:
    """Mark the added rows, found with numpy on the driver; counts per mark."""
    old_pairs: list[bytes] = []
    old_urls: list[bytes] = []
    stored: list[bytes] = []
    failed: list[bytes] = []
    for shard in range(first):
        outcomes = _raw_outcomes(dataset, shard) if skip else {}
        for row, uid, url in _shard_rows(dataset, shard):
            key = _url_key(url)
            old_pairs.append(bytes.fromhex(uid))
            old_urls.append(key)
            tag = outcomes.get(row)
            if tag == _STORED:
                stored.append(key)
            elif tag == _FAILED:
                failed.append(key)
    rows: list[tuple[int, int]] = []
    new_pairs: list[bytes] = []
    new_urls: list[bytes] = []
    for shard in range(first, end):
        for row, uid, url in _shard_rows(dataset, shard):
            rows.append((shard, row))
            new_pairs.append(bytes.fromhex(uid))
            new_urls.append(_url_key(url))
    if not rows:
        return {}

    def array(keys: list[bytes], size: int) -> np.ndarray:
        return np.frombuffer(b"".join(keys), dtype=f"V{size}")

    pairs, urls = array(new_pairs, 16), array(new_urls, 12)
    # Earlier rows come first, so a later occurrence over old + new rows is a pair seen before.
    pair_seen = _later_occurrences(np.concatenate([array(old_pairs, 16), pairs]))[len(old_pairs) :]
    url_seen = _later_occurrences(np.concatenate([array(old_urls, 12), urls]))[len(old_urls) :]
    any_stored = np.isin(urls, array(stored, 12)) if stored else np.zeros(len(rows), dtype=bool)
    any_failed = np.isin(urls, array(failed, 12)) if failed else np.zeros(len(rows), dtype=bool)
    is_stored = any_stored if STORED_SKIP in skip else np.zeros(len(rows), dtype=bool)
    is_failed = any_failed & ~any_stored if FAILED_SKIP in skip else np.zeros(len(rows), dtype=bool)
    marks: dict[int, list[tuple[int, str]]] = {}
    for i in np.flatnonzero(pair_seen | url_seen | is_stored | is_failed):
        mark = PAIR if pair_seen[i] else STORED if is_stored[i] else FAILED if is_failed[i] else URL
        shard, row = rows[i]
        marks.setdefault(shard, []).append((row, mark))
    counts: Counter[str] = Counter()
    for shard, entries in sorted(marks.items()):
        counts.update(_write_shard_marks(dataset, shard, entries))
    return _ordered(counts)


def _marks_with_spark(
    executor: Any, dataset: Dataset, first: int, end: int, skip: tuple[str, ...]
) -> dict[str, int]:
    """The same marks with a Spark shuffle (datasets too long for the driver); counts per mark."""

    def keys(shard: int) -> Iterator[tuple[tuple[str, str], tuple[int, int, str | None]]]:
        outcomes = _raw_outcomes(dataset, shard) if skip and shard < first else {}
        for row, uid, url in _shard_rows(dataset, shard):
            yield ("p", uid), (row, shard, None)
            yield ("u", _url_key(url).hex()), (row, shard, outcomes.get(row))

    def marks_of(item: tuple[tuple[str, str], Iterable[tuple[int, int, str | None]]]) -> Iterator[Any]:
        (kind, _), values = item
        ordered = sorted(values)
        stored = any(tag == _STORED for _, shard, tag in ordered if shard < first)
        failed = not stored and any(tag == _FAILED for _, shard, tag in ordered if shard < first)
        for position, (row, shard, _) in enumerate(ordered):
            if shard < first:
                continue
            if kind == "p":
                mark = PAIR if position else None
            elif stored and STORED_SKIP in skip:
                mark = STORED
            elif failed and FAILED_SKIP in skip:
                mark = FAILED
            else:
                mark = URL if position else None
            if mark is not None:
                yield row, (shard, mark)

    def stronger(a: tuple[int, str], b: tuple[int, str]) -> tuple[int, str]:
        return a if PRIORITY.index(a[1]) <= PRIORITY.index(b[1]) else b

    counts = (
        executor.flat_map(range(end), keys)
        .groupByKey()
        .flatMap(marks_of)
        .reduceByKey(stronger)
        .map(lambda item: (item[1][0], (item[0], item[1][1])))
        .groupByKey()
        .map(lambda item: _write_shard_marks(dataset, item[0], item[1]))
        .fold({}, lambda a, b: dict(Counter(a) + Counter(b)))
    )
    return _ordered(Counter(counts))


def _write_shard_marks(dataset: Dataset, shard: int, entries: Iterable[tuple[int, str]]) -> dict[str, int]:
    """Write ``_input/NNNNN_dups.json`` of an added shard (row -> mark); counts per mark."""
    payload = {str(row): mark for row, mark in sorted(entries)}
    dataset.storage.write_json(payload, *dataset.input.shard(shard).duplicates_file)
    return dict(Counter(payload.values()))


def _ordered(counts: Counter[str]) -> dict[str, int]:
    return {kind: counts[kind] for kind in PRIORITY if counts[kind]}


def append_to_dataset(
    executor: Any, dataset: Dataset, ingest: IngestOptions, samples_per_shard: int, skip_urls: Iterable[str]
) -> dict[str, Any]:
    """``--append`` on a dataset that has input shards: the first list's duplicates are marked
    first (an interrupted first run may not have), then the list is added."""
    manifest = dataset.input.manifest()
    shards, rows = first_list(manifest)
    mark_duplicates(executor, dataset, shards, samples_per_shard, rows)
    return append_list(executor, dataset, ingest, samples_per_shard, skip_urls)


def appended_fingerprints(manifest: dict[str, Any], inputs: str) -> tuple[tuple[int, str], ...]:
    """``(first shard, fingerprint)`` of each added list: the first list's fingerprint ``inputs``
    (options, schema) with the added list's signature."""
    return tuple(
        (
            part["first_shard"],
            fingerprint(dataset=inputs, appended=part["signature"], first=part["first_shard"]),
        )
        for part in appended_lists(manifest)
    )


def all_duplicates(first: dict[str, int], manifest: dict[str, Any]) -> dict[str, int]:
    """Duplicate pairs and URLs found over every list (the first list's counts plus the marks)."""
    total = Counter(first)
    for part in appended_lists(manifest):
        total.update({k: v for k, v in part["marked"].items() if k in (PAIR, URL)})
    return {k: total.get(k, 0) for k in (PAIR, URL)}
