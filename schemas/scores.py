"""Per-shard CLIP scores (``scores/NNNNN.parquet``): one row per successful raw sample."""

import pyarrow as pa

from schemas.contract import versioned

SCORES_VERSION = 1

SCORES_SCHEMA = versioned(
    "scores",
    SCORES_VERSION,
    [
        pa.field("uid", pa.string(), nullable=False),
        # Cosine similarity of the L2-normalised image and text embeddings.
        pa.field("clip_score", pa.float32(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("pretrained", pa.string(), nullable=False),
    ],
)
