"""What build_shards did with every sample (``final/_selection/NNNNN.parquet``, one per raw shard)."""

import pyarrow as pa

from schemas.contract import versioned

SELECTION_VERSION = 1

# Drop reasons, in the order the rules are applied: a sample dropped by several rules carries
# the first one. Values are stable: they are stored in outputs (see docs/build_shards.md).
REASON_REPEATED_UID = "repeated_uid"
REASON_BENCHMARK = "benchmark_duplicate"
REASON_NOT_INCLUDED = "not_in_include_list"
REASON_EXCLUDED = "in_exclude_list"
REASON_CAPTION = "caption_too_short"
# --- caption rules (issue 18, part A: lang), in this order, right after caption_too_short.
REASON_CAPTION_WORDS = "caption_too_few_words"
REASON_FILE_NAME = "caption_file_name"
REASON_URL = "caption_url"
REASON_REPEATED_CHARS = "caption_repeated_chars"
REASON_SYMBOLS = "caption_symbols"
REASON_BOILERPLATE = "caption_boilerplate"
REASON_LANGUAGE = "language"
CAPTION_RULE_REASONS = (
    REASON_CAPTION_WORDS,
    REASON_FILE_NAME,
    REASON_URL,
    REASON_REPEATED_CHARS,
    REASON_SYMBOLS,
    REASON_BOILERPLATE,
    REASON_LANGUAGE,
)
# --- end of part A's block
REASON_IMAGE_SIZE = "image_too_small"
REASON_ASPECT = "aspect_ratio"
REASON_EXACT = "exact_duplicate"
REASON_NEAR = "near_duplicate"
REASON_SEMANTIC = "semantic_duplicate"
REASON_UNSCORED = "unscored"
REASON_LOW_SCORE = "low_clip_score"
REASON_TOP_FRACTION = "below_top_fraction"
# Issue 18, part C (probes): a probe score beyond --probe-max/--probe-min; match_id names the probe.
REASON_PROBE = "probe"
DROP_REASONS = (
    REASON_REPEATED_UID,
    REASON_BENCHMARK,
    REASON_NOT_INCLUDED,
    REASON_EXCLUDED,
    REASON_CAPTION,
    *CAPTION_RULE_REASONS,
    REASON_IMAGE_SIZE,
    REASON_ASPECT,
    REASON_EXACT,
    REASON_NEAR,
    REASON_SEMANTIC,
    REASON_UNSCORED,
    REASON_LOW_SCORE,
    REASON_TOP_FRACTION,
    REASON_PROBE,  # issue 18, part C
)

# One row per downloaded sample (success in raw/), kept or dropped; rows sorted by uid.
SELECTION_SCHEMA = versioned(
    "selection",
    SELECTION_VERSION,
    [
        pa.field("uid", pa.string(), nullable=False),
        # Raw shard holding the sample (raw/NNNNN.tar), as in dedup/matches.parquet.
        pa.field("raw_shard", pa.int32(), nullable=False),
        # Null when kept; else the first failing rule (one of DROP_REASONS).
        pa.field("reason", pa.string()),
        # CLIP score from scores/ (null when the shard is not scored).
        pa.field("clip_score", pa.float32()),
        # For dedup drops: the match_id of dedup/matches.parquet (benchmark id or kept uid);
        # for probe drops: the name of the probe whose rule failed.
        pa.field("match_id", pa.string()),
        # Kept samples only: final shard number (final/NNNNNN.tar) and position inside it.
        pa.field("final_shard", pa.int32()),
        pa.field("position", pa.int32()),
    ],
)
