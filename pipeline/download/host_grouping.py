"""``--group-hosts N``: each host's rows kept together, so that few tasks share a host.

The list is read in windows of N input shards' worth of rows; inside a window, rows are
reordered so that each host's rows are adjacent (hosts in the order they first appear, rows of a
host in list order), then cut into shards as usual. A host with ``r`` rows in a window then sits
in at most ``ceil(r / S) + 1`` of its shards instead of up to N, and the job-wide per-host budget
(:mod:`pipeline.download.host_budget`) is shared among that many tasks. Memory: one window of
rows (N x ``--samples-per-shard``).

``row_index`` counts rows in the new order, so input shard ``k`` still holds rows ``[k*S,
(k+1)*S)`` and everything keyed by ``row_index`` (duplicates: the first occurrence is the lowest
index) works unchanged; ``source_file`` and ``source_row`` still name each row's place in the
list. The order depends only on the list and N: a rerun gives the same shards.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pyarrow as pa

from pipeline.fetch.politeness import host_of


def grouped_by_host(batches: Iterable[pa.Table], window_rows: int) -> Iterator[pa.Table]:
    """``batches`` (canonical URL-list tables, in order) regrouped by host window by window."""
    pending: list[pa.Table] = []
    pending_rows = 0
    first_index = 0
    for table in batches:
        pending.append(table)
        pending_rows += table.num_rows
        while pending_rows >= window_rows:
            merged = pa.concat_tables(pending)
            yield _regroup(merged.slice(0, window_rows), first_index)
            first_index += window_rows
            rest = merged.slice(window_rows)
            pending, pending_rows = [rest], rest.num_rows
    if pending_rows:
        yield _regroup(pa.concat_tables(pending), first_index)


def _regroup(window: pa.Table, first_index: int) -> pa.Table:
    order: dict[str, int] = {}
    keys = []
    for url in window.column("url").to_pylist():
        host = host_of(url) if url else ""
        keys.append(order.setdefault(host, len(order)))
    indices = sorted(range(window.num_rows), key=keys.__getitem__)  # stable: list order within a host
    regrouped = window.take(pa.array(indices, pa.int64()))
    position = regrouped.schema.get_field_index("row_index")
    numbers = pa.array(range(first_index, first_index + window.num_rows), pa.int64())
    return regrouped.set_column(position, regrouped.schema.field(position), numbers)
