"""``final/_selection/NNNNN.parquet``: what happened to every sample of raw shard NNNNN."""

from __future__ import annotations

import io
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.build.shard_plan import FINAL_DIR
from pipeline.dataset import Dataset
from schemas.selection import SELECTION_SCHEMA

SELECTION_DIR = "_selection"


def write_selection_part(dataset_url: str, raw_shard: int, rows: list[tuple[Any, ...]]) -> int:
    """Write the records of one raw shard (``SELECTION_SCHEMA`` tuples), sorted by uid; return the count.

    The temporary name starts with ``_`` so readers of the folder (pyarrow, Spark) skip it.
    """
    dataset = Dataset(dataset_url)
    rows = sorted(rows, key=lambda r: r[0])
    names = SELECTION_SCHEMA.names
    table = pa.Table.from_pylist([dict(zip(names, r, strict=True)) for r in rows], schema=SELECTION_SCHEMA)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    name = f"{dataset.shard_name(raw_shard)}.parquet"
    final = dataset.path(FINAL_DIR, SELECTION_DIR, name)
    temp = dataset.temp_path(dataset.path(FINAL_DIR, SELECTION_DIR, f"_{name}"))
    dataset.makedirs(FINAL_DIR, SELECTION_DIR)
    with dataset.fs.open(temp, "wb") as handle:
        handle.write(buffer.getvalue())
    dataset.fs.mv(temp, final)
    return len(rows)
