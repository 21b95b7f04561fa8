"""The ids of a kNN index (``index/KIND_uids.parquet``): row ``i`` is the index's vector ``i``."""

import pyarrow as pa

from schemas.contract import versioned

INDEX_UIDS_VERSION = 1

INDEX_UIDS_SCHEMA = versioned(
    "index_uids",
    INDEX_UIDS_VERSION,
    [
        pa.field("uid", pa.string(), nullable=False),
        # Where the vector is stored: scores/embeddings/SHARD_KIND.npy, row ROW.
        pa.field("shard", pa.int32(), nullable=False),
        pa.field("row", pa.int32(), nullable=False),
    ],
)
