"""Expected build outputs recomputed in plain Python from raw/, scores/ and hand-written matches.

Independent of the Spark code under test: the documented rules, order and shuffle, applied here.
"""

from __future__ import annotations

import hashlib
import json
import math
import tarfile
from pathlib import Path

from pipeline.build.shard_plan import shuffle_key
from pipeline.captions.rules import caption_length
from tests.build.conftest import raw_rows, read_final, read_json, scores, selection, write_matches

ORDER = (
    "repeated_uid",
    "benchmark_duplicate",
    "not_in_include_list",
    "in_exclude_list",
    "caption_too_short",
    "image_too_small",
    "aspect_ratio",
    "exact_duplicate",
    "near_duplicate",
    "unscored",
    "low_clip_score",
    "below_top_fraction",
)


def plant_matches(dataset: Path) -> dict[str, tuple[str, str]]:
    """Mark 3 samples as benchmark, 3 as exact and 3 as near duplicates; return uid -> (reason, match)."""
    uids = sorted(raw_rows(dataset))
    rows = raw_rows(dataset)
    planted = {}
    reasons = ["benchmark_duplicate"] * 3 + ["exact_duplicate"] * 3 + ["near_duplicate"] * 3
    for i, reason in enumerate(reasons):
        uid = uids[5 * i + 2]
        planted[uid] = (reason, f"bench/{i}" if reason == "benchmark_duplicate" else uids[5 * i + 1])
    write_matches(
        dataset,
        [
            {
                "uid": uid,
                "reason": reason,
                "match_id": match,
                "distance": 0 if reason == "exact_duplicate" else 3,
                "shard": rows[uid]["raw_shard"],
            }
            for uid, (reason, match) in planted.items()
        ],
    )
    return planted


def expected_reasons(
    dataset: Path,
    matches: dict[str, tuple[str, str]],
    *,
    min_caption: int = 5,
    min_size: int = 0,
    max_aspect: float = math.inf,
    keep_dups: bool = False,
    min_score: float | None = None,
    top_fraction: float | None = None,
) -> dict[str, str | None]:
    """The documented rules, applied in order, in plain Python.

    ``min_caption`` defaults to build_shards' own default; the other caption rules (on by default)
    never fire on the fabricated captions (words of ``testkit.raw_shards.WORDS``, each on fewer
    than 100 images).
    """
    rows, score = raw_rows(dataset), scores(dataset)
    top: set[str] | None = None
    if top_fraction is not None:
        ranked = sorted(score, key=lambda u: (-score[u], u))
        top = set(ranked[: math.ceil(round(top_fraction * len(ranked), 9))])
    out: dict[str, str | None] = {}
    for uid, row in rows.items():
        w, h = row["original_width"], row["original_height"]
        dedup = matches.get(uid, (None, None))[0]
        checks = [
            ("benchmark_duplicate", dedup == "benchmark_duplicate"),
            ("caption_too_short", caption_length(row["caption"]) < min_caption),
            ("image_too_small", min(w, h) < min_size),
            ("aspect_ratio", max(w, h) > max_aspect * min(w, h)),
            ("exact_duplicate", not keep_dups and dedup == "exact_duplicate"),
            ("near_duplicate", not keep_dups and dedup == "near_duplicate"),
            ("low_clip_score", min_score is not None and score[uid] < min_score),
            ("below_top_fraction", top is not None and uid not in top),
        ]
        out[uid] = next((name for name, failed in checks if failed), None)
    return out


def check_final(
    dataset: Path, expected: dict[str, str | None], seed: int, per_shard: int, keep_cols: bool = True
) -> None:
    """Everything a user relies on in final/, checked against the expected selection."""
    rows, score = raw_rows(dataset), scores(dataset)
    kept = sorted((u for u, r in expected.items() if r is None), key=lambda u: (shuffle_key(seed, u), u))
    shards = read_final(dataset)
    # Uniform sizes, the global shuffle order, 000000.tar names.
    assert [len(s) for s in shards[:-1]] == [per_shard] * (len(shards) - 1)
    assert 0 < len(shards[-1]) <= per_shard
    assert [key for shard in shards for key, _ in shard] == kept
    assert [p.name for p in sorted((dataset / "final").glob("*.tar"))] == [
        f"{i:06d}.tar" for i in range(len(shards))
    ]
    # Samples: dot-free keys, the raw image bytes, the caption, the metadata with the score.
    raw_images = {}
    for path in sorted((dataset / "raw").glob("*.tar")):
        with tarfile.open(path) as tar:
            images = {m.name[:-4]: tar.extractfile(m).read() for m in tar if m.name.endswith(".jpg")}
        raw_images.update(images)
    for shard in shards:
        for key, members in shard:
            assert "." not in key and set(members) == {"jpg", "txt", "json"}
            assert members["jpg"] == raw_images[key]
            assert members["txt"].decode() == rows[key]["caption"]
            meta = json.loads(members["json"])
            assert meta["uid"] == key and meta["url"] == rows[key]["url"]
            assert meta["caption"] == rows[key]["caption"] and meta["clip_score"] == score[key]
            assert meta["raw_shard"] == rows[key]["raw_shard"] and "status" not in meta
            assert meta["original_width"] == rows[key]["original_width"] and meta["width"] > 0
            assert "label" in meta or not keep_cols  # a --keep-cols column of the download
    # sizes.json as open_clip_train reads it; manifest.json with true sizes and hashes.
    sizes = read_json(dataset / "final" / "sizes.json")
    assert sizes == {f"{i:06d}.tar": len(s) for i, s in enumerate(shards)}
    manifest = read_json(dataset / "final" / "manifest.json")
    for entry in manifest["shards"]:
        data = (dataset / "final" / entry["name"]).read_bytes()
        assert entry["bytes"] == len(data) and entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["total_samples"] == len(kept)
    # Every sample has exactly one record: kept with its place, or dropped with its reason.
    records = selection(dataset)
    assert set(records) == set(expected)
    assert {u: r["reason"] for u, r in records.items()} == expected
    places = {key: (i, pos) for i, shard in enumerate(shards) for pos, (key, _) in enumerate(shard)}
    for uid, record in records.items():
        assert (record["final_shard"], record["position"]) == places.get(uid, (None, None))
        assert record["raw_shard"] == rows[uid]["raw_shard"]
