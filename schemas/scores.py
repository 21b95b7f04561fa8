"""Per-shard CLIP scores (``scores/NNNNN.parquet``): one row per successful raw sample."""

import pyarrow as pa

from schemas.contract import versioned

# v2 (issue 18): language, language_confidence and caption_repaired. v1 files are refused by the
# readers (schema check); the score job redoes them, as its fingerprint holds the version.
SCORES_VERSION = 2

SCORES_SCHEMA = versioned(
    "scores",
    SCORES_VERSION,
    [
        pa.field("uid", pa.string(), nullable=False),
        # Cosine similarity of the L2-normalised image and text embeddings.
        pa.field("clip_score", pa.float32(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("pretrained", pa.string(), nullable=False),
        # ISO 639-1 code of the (repaired) caption's language, "und" when it has no letter
        # (pipeline/captions/language.py), and the identifier's confidence in [0, 1].
        pa.field("language", pa.string(), nullable=False),
        pa.field("language_confidence", pa.float32(), nullable=False),
        # True when ftfy changed the caption (pipeline/captions/repair.py); the model read the repair.
        pa.field("caption_repaired", pa.bool_(), nullable=False),
    ],
)
