"""Dedup outputs (``dedup/``): benchmark hashes for reuse, and the samples to drop."""

import pyarrow as pa

from schemas.contract import versioned

BENCHMARK_HASHES_VERSION = 4
MATCHES_VERSION = 5
CENTRE_HASHES_VERSION = 3
BENCHMARK_EMBEDDINGS_VERSION = 1

# Reasons in matches.parquet. A benchmark match is always dropped by build_shards; the two
# within-corpus reasons are dropped by default (one representative per group is kept and is
# not listed).
REASON_BENCHMARK = "benchmark_duplicate"
REASON_EXACT = "exact_duplicate"
REASON_NEAR = "near_duplicate"
# Within-corpus semantic duplicates (opt-in, --semantic-threshold): image embeddings at or above
# a cosine similarity inside one k-means cluster (SemDeDup); dropped like the other two.
REASON_SEMANTIC = "semantic_duplicate"
REASONS = (REASON_BENCHMARK, REASON_EXACT, REASON_NEAR, REASON_SEMANTIC)

# dedup/benchmark_hashes.parquet: one row per benchmark image, hashed with the same code path
# (decode, resize, encode as recorded in raw/_options.json, then pHash) as corpus images.
BENCHMARK_HASHES_SCHEMA = versioned(
    "benchmark_hashes",
    BENCHMARK_HASHES_VERSION,
    [
        # "<source name>/<image key>": stable across runs, unique over all --benchmark sources.
        pa.field("benchmark_id", pa.string(), nullable=False),
        # The --benchmark path the image came from and the file or tar member inside it.
        pa.field("source", pa.string(), nullable=False),
        pa.field("member", pa.string()),
        # pHash of the stored image (signed int64, two's complement) and of its mirror image.
        pa.field("phash", pa.int64(), nullable=False),
        pa.field("phash_flipped", pa.int64()),
        # pHash of the central 60% of each side of the picture (pipeline.dedup.centre); null for
        # precomputed hashes without it.
        pa.field("phash_centre", pa.int64()),
        # Standard deviation of the 32x32 greyscale thumbnail pHash looks at (0-255 scale).
        pa.field("complexity", pa.float32()),
        # 8x8 RGB thumbnail (192 bytes), compared when a match involves a low-complexity image.
        pa.field("colour_signature", pa.binary()),
        # The verification thumbnail (pipeline.dedup.verify: 32x32 RGB of the picture without the
        # resize padding, 3,072 bytes); null for precomputed hashes without it.
        pa.field("thumbnail", pa.binary()),
        # The thumbnails of the picture's central 95%, 90%, 85%, 80% and 75% of each side, joined
        # (15,360 bytes): a corpus copy cropped by 5-25% is compared with these.
        pa.field("thumbnail_zoomed", pa.binary()),
        # The verification thumbnail of the picture inside its letterbox or pillarbox bars
        # (pipeline.dedup.bars); null when it has none.
        pa.field("thumbnail_unbarred", pa.binary()),
        # sha256 (hex) of the benchmark file's bytes; null for precomputed hashes.
        pa.field("sha256", pa.string()),
    ],
)

# dedup/matches.parquet: one row per corpus sample to drop (a sample appears at most once; a
# benchmark match wins over a within-corpus duplicate).
MATCHES_SCHEMA = versioned(
    "matches",
    MATCHES_VERSION,
    [
        pa.field("uid", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        # benchmark_duplicate: the closest benchmark_id; exact/near duplicate: the uid of the
        # sample kept for the group (the group id).
        pa.field("match_id", pa.string(), nullable=False),
        # Hamming distance of the pHashes (0 for exact duplicates).
        pa.field("distance", pa.int32(), nullable=False),
        # Raw shard holding the sample, so audits and build_shards can find its image.
        pa.field("shard", pa.int32(), nullable=False),
        # benchmark_duplicate: what found the pair: "phash" (the whole picture), "phash_mirrored"
        # (--flip-invariant), "phash_centre" (--centre-max-distance), "embedding" (--embeddings,
        # when no hash reached it) or "layout" (the layout search, when neither did); null for
        # within-corpus duplicates.
        pa.field("matched_hash", pa.string()),
        # The signals, each to the matched image: whole-picture pHash distance (to the mirror for
        # "phash_mirrored"), centre-hash distance (benchmark matches, when both have one), and the
        # verification thumbnail distance (pipeline.dedup.verify: share of differing pixels, 0-1;
        # null when not compared: exact duplicates, --max-thumbnail-distance -1, precomputed
        # benchmark hashes without thumbnails).
        pa.field("phash_distance", pa.int32()),
        pa.field("centre_distance", pa.int32()),
        pa.field("thumbnail_distance", pa.float32()),
        # Whether the verification thumbnails agreed (null when they were not compared).
        pa.field("verified", pa.bool_()),
        # The signals that agreed, in order: "sha256", "phash", "phash_mirrored", "phash_centre",
        # "embedding", "layout", "thumbnail" (each within its threshold).
        pa.field("signals", pa.list_(pa.string())),
        # Cosine similarity of the image embeddings (the score job's, --embeddings): to the closest
        # benchmark query (the picture, its mirror or a central crop) for benchmark matches, to the
        # group's representative for semantic duplicates; null when not measured.
        pa.field("embedding_similarity", pa.float32()),
        # Cosine similarity of the thumbnail layouts (the layout search, pipeline.dedup.layout): the
        # best of the benchmark image's layout queries; null when not measured.
        pa.field("layout_similarity", pa.float32()),
    ],
)

# dedup/centre_hashes/NNNNN.parquet: what the dedup job computes from every stored image of raw
# shard NNNNN, in tar order (a cache the dedup job keeps for reruns): the centre pHash
# (pipeline.dedup.centre), the low-complexity rule's complexity and colour signature
# (pipeline.dedup.complexity) and the verification thumbnails (pipeline.dedup.verify), of the
# picture and of the picture inside its bars (pipeline.dedup.bars).
CENTRE_HASHES_SCHEMA = versioned(
    "centre_hashes",
    CENTRE_HASHES_VERSION,
    [
        pa.field("uid", pa.string(), nullable=False),
        pa.field("phash_centre", pa.int64(), nullable=False),
        pa.field("complexity", pa.float32(), nullable=False),
        pa.field("colour_signature", pa.binary(), nullable=False),
        pa.field("thumbnail", pa.binary(), nullable=False),
        # The thumbnail of the picture inside its letterbox or pillarbox bars; null without bars.
        pa.field("thumbnail_unbarred", pa.binary()),
    ],
)

# dedup/benchmark_embeddings.parquet (with --embeddings): the benchmark images embedded by the
# model the corpus was scored with, for reuse while sources, image options and model are unchanged.
BENCHMARK_EMBEDDINGS_SCHEMA = versioned(
    "benchmark_embeddings",
    BENCHMARK_EMBEDDINGS_VERSION,
    [
        pa.field("benchmark_id", pa.string(), nullable=False),
        # float16, L2-normalised, one after the other: the picture, its mirror image and its centre
        # cropped by 15% of each side (pipeline.dedup.embeddings.QUERIES), each of the model's width.
        pa.field("embeddings", pa.binary(), nullable=False),
    ],
)
