"""``final/_selection/NNNNN.parquet``: what happened to every sample of raw shard NNNNN."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from pipeline.dataset import Dataset
from schemas.selection import SELECTION_SCHEMA


def write_selection_part(dataset: Dataset, raw_shard: int, rows: list[tuple[Any, ...]]) -> int:
    """Write the records of one raw shard (``SELECTION_SCHEMA`` tuples), sorted by uid; return the count.

    Written atomically (temporary name, then rename); readers of the folder skip temporaries.
    """
    rows = sorted(rows, key=lambda r: r[0])
    names = SELECTION_SCHEMA.names
    table = pa.Table.from_pylist([dict(zip(names, r, strict=True)) for r in rows], schema=SELECTION_SCHEMA)
    dataset.storage.write_parquet(table, *dataset.final.selection(raw_shard).parts)
    return len(rows)
