"""Canonical URL list: one row per input row, the unit the download job shards and fetches.

Every input format (parquet, CSV, TSV, JSONL, text) is normalised to this schema by
``pipeline.ingest``. Rows that could not be parsed are kept (``ingest_error`` set) so the raw
shards can account for every input row.
"""

import pyarrow as pa

from schemas.contract import versioned

URL_LIST_VERSION = 1

URL_LIST_SCHEMA = versioned(
    "url_list",
    URL_LIST_VERSION,
    [
        # Stable id of the (normalised URL, caption) pair; dot-free, used as the WebDataset key.
        pa.field("uid", pa.string(), nullable=False),
        # Global position of the row in the input, counted over all input files in sorted order.
        pa.field("row_index", pa.int64(), nullable=False),
        pa.field("url", pa.string()),
        pa.field("caption", pa.string()),
        # Input file and 1-based row (data line) number within it, for error messages.
        pa.field("source_file", pa.string(), nullable=False),
        pa.field("source_row", pa.int64(), nullable=False),
        # Columns kept with --keep-cols, as a JSON object.
        pa.field("extra", pa.string()),
        # Set when the row is unusable: its failure class and a human-readable reason.
        pa.field("ingest_error", pa.string()),
        pa.field("ingest_message", pa.string()),
    ],
)
