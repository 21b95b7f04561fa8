"""Per-shard download result: one row per input row, success or not (``raw/NNNNN.parquet``)."""

import pyarrow as pa

from schemas.contract import versioned

RAW_SHARD_VERSION = 1

STATUS_SUCCESS = "success"
STATUS_FAILED = "failed"
STATUS_SKIPPED = "skipped"

RAW_SHARD_SCHEMA = versioned(
    "raw_shard",
    RAW_SHARD_VERSION,
    [
        pa.field("uid", pa.string(), nullable=False),
        pa.field("row_index", pa.int64(), nullable=False),
        pa.field("url", pa.string()),
        pa.field("caption", pa.string()),
        # success | failed | skipped (not attempted: bad input row, duplicate pair)
        pa.field("status", pa.string(), nullable=False),
        # Failure class (see pipeline.errors.ErrorClass); null on success.
        pa.field("error_class", pa.string()),
        pa.field("error_message", pa.string()),
        pa.field("http_status", pa.int32()),
        # URL actually fetched after redirects.
        pa.field("final_url", pa.string()),
        pa.field("original_width", pa.int32()),
        pa.field("original_height", pa.int32()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        # Size of the bytes downloaded, and of the stored encoded image.
        pa.field("original_bytes", pa.int64()),
        pa.field("stored_bytes", pa.int64()),
        # sha256 (hex) of the downloaded bytes, as served.
        pa.field("sha256", pa.string()),
        # 64-bit DCT perceptual hash of the stored image, as a signed int64 (two's complement).
        pa.field("phash", pa.int64()),
        pa.field("extra", pa.string()),
    ],
)
