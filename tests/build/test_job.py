"""The build_shards job on a real downloaded and scored dataset, with Spark.

Expected selections are recomputed here in plain Python from raw/, scores/ and the matches
written by the test, independently of the Spark code under test.
"""

from __future__ import annotations

import hashlib
import json
import math
import tarfile
from collections import Counter
from pathlib import Path

import pytest

from pipeline.build.job import run
from pipeline.build.shard_plan import shuffle_key
from pipeline.errors import UserInputError
from tests.build.conftest import (
    build_options,
    raw_rows,
    read_final,
    read_json,
    scores,
    selection,
    write_matches,
)

ORDER = (
    "repeated_uid",
    "benchmark_duplicate",
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
    min_caption: int = 0,
    min_size: int = 0,
    max_aspect: float = math.inf,
    keep_dups: bool = False,
    min_score: float | None = None,
    top_fraction: float | None = None,
) -> dict[str, str | None]:
    """The documented rules, applied in order, in plain Python."""
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
            ("caption_too_short", len(row["caption"].strip()) < min_caption),
            ("image_too_small", min(w, h) < min_size),
            ("aspect_ratio", max(w, h) > max_aspect * min(w, h)),
            ("exact_duplicate", not keep_dups and dedup == "exact_duplicate"),
            ("near_duplicate", not keep_dups and dedup == "near_duplicate"),
            ("low_clip_score", min_score is not None and score[uid] < min_score),
            ("below_top_fraction", top is not None and uid not in top),
        ]
        out[uid] = next((name for name, failed in checks if failed), None)
    return out


def check_final(dataset: Path, expected: dict[str, str | None], seed: int, per_shard: int) -> None:
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
            assert "label" in meta  # a --keep-cols column of the download
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


def test_selection_rules_shuffle_and_outputs(spark, dataset: Path) -> None:
    planted = plant_matches(dataset)
    rows = raw_rows(dataset)
    # Thresholds from the data itself, so every rule drops something.
    captions = sorted(len(r["caption"].strip()) for r in rows.values())
    sides = sorted(min(r["original_width"], r["original_height"]) for r in rows.values())
    ratios = sorted(
        max(r["original_width"], r["original_height"]) / min(r["original_width"], r["original_height"])
        for r in rows.values()
    )
    rules = {
        "min_caption": captions[len(captions) // 10],
        "min_size": sides[len(sides) // 10],
        "max_aspect": round(ratios[-len(ratios) // 10], 3),
    }
    summary = run(
        spark,
        build_options(
            dataset,
            "--top-fraction",
            "0.7",
            "--min-caption-length",
            str(rules["min_caption"]),
            "--min-image-size",
            str(rules["min_size"]),
            "--max-aspect-ratio",
            str(rules["max_aspect"]),
            "--samples-per-shard",
            "6",
            "--seed",
            "5",
        ),
    )
    expected = expected_reasons(dataset, planted, top_fraction=0.7, **rules)
    counts = Counter(expected.values())
    assert summary["samples"] == len(rows) and summary["kept"] == counts[None]
    assert summary["dropped"] == {r: counts[r] for r in ORDER if counts[r]}
    assert list(summary["dropped"]) == [r for r in ORDER if counts[r]]  # in rule order
    for reason in ("benchmark_duplicate", "caption_too_short", "image_too_small", "below_top_fraction"):
        assert counts[reason] > 0, reason
    check_final(dataset, expected, seed=5, per_shard=6)
    records = selection(dataset)
    assert {records[u]["match_id"] for u, (r, _) in planted.items() if r == "benchmark_duplicate"} == {
        "bench/0",
        "bench/1",
        "bench/2",
    }
    manifest = read_json(dataset / "final" / "manifest.json")
    assert manifest["selection"]["top_fraction"] == 0.7 and manifest["selection"]["seed"] == 5
    assert manifest["upstream"]["scores"]["model"] == "corpusforge-tiny"
    assert manifest["upstream"]["schemas"] == {"raw_shard": 1, "scores": 1, "matches": 1, "selection": 1}
    assert manifest["upstream"]["download_options"]["image"]["image_size"] == 256
    assert manifest["corpusforge_version"] and manifest["counts"]["dropped"] == summary["dropped"]
    # Few shards for open_clip_train: a warning, not an error.
    assert any("--min-shards" in w for w in summary["warnings"])


def test_min_clip_score_keeps_corpus_duplicates_but_never_benchmark_ones(spark, dataset: Path) -> None:
    planted = plant_matches(dataset)
    threshold = sorted(scores(dataset).values())[len(scores(dataset)) // 3]
    summary = run(
        spark,
        build_options(
            dataset,
            "--min-clip-score",
            repr(threshold),
            "--keep-corpus-duplicates",
            "--samples-per-shard",
            "10",
            "--min-shards",
            "2",
        ),
    )
    expected = expected_reasons(dataset, planted, min_score=threshold, keep_dups=True)
    assert "exact_duplicate" not in summary["dropped"] and summary["dropped"]["benchmark_duplicate"] == 3
    assert summary["dropped"]["low_clip_score"] == Counter(expected.values())["low_clip_score"] > 0
    assert not summary["warnings"]
    check_final(dataset, expected, seed=0, per_shard=10)
    kept = {u for u, r in expected.items() if r is None}
    assert all(scores(dataset)[u] >= threshold for u in kept)


@pytest.mark.slow
def test_same_inputs_same_shards_and_the_seed_changes_only_the_order(spark, dataset: Path, tmp_path) -> None:
    import shutil

    other = tmp_path / "other"
    shutil.copytree(dataset, other)
    third = tmp_path / "third"
    shutil.copytree(dataset, third)
    args = ("--top-fraction", "0.5", "--samples-per-shard", "8")
    run(spark, build_options(dataset, *args))
    run(spark, build_options(other, *args))
    run(spark, build_options(third, *args, "--seed", "1"))
    first = read_json(dataset / "final" / "manifest.json")["shards"]
    assert first == read_json(other / "final" / "manifest.json")["shards"]
    keys = [k for shard in read_final(dataset) for k, _ in shard]
    reseeded = [k for shard in read_final(third) for k, _ in shard]
    assert sorted(keys) == sorted(reseeded) and keys != reseeded
    # The shuffle mixes raw shards inside every final shard.
    rows = raw_rows(dataset)
    assert all(len({rows[k]["raw_shard"] for k, _ in shard}) > 1 for shard in read_final(dataset))


@pytest.mark.slow
def test_rerun_is_idempotent_and_partial_output_is_redone(spark, dataset: Path) -> None:
    args = ("--top-fraction", "0.8", "--samples-per-shard", "9")
    first = run(spark, build_options(dataset, *args))
    final = dataset / "final"
    manifest = (final / "manifest.json").read_bytes()
    sizes = (final / "sizes.json").read_bytes()
    records = selection(dataset)
    again = run(spark, build_options(dataset, *args))
    assert again["shards_resumed"] == again["shards"] == first["shards"]
    assert (final / "manifest.json").read_bytes() == manifest and (final / "sizes.json").read_bytes() == sizes
    assert selection(dataset) == records

    # The states a killed run leaves: a tar renamed without its marker, a lost tar, a half
    # written temporary file, a marker of another plan, no manifest yet.
    (final / "000001_stats.json").unlink()
    (final / "000001.tar").write_bytes(b"garbage")
    (final / "000002.tar").unlink()
    (final / "000002_stats.json").unlink()
    (final / "000003.tar.tmp.0123456789ab").write_bytes(b"half")
    (final / "_selection" / "_00000.parquet.tmp.0123456789ab").write_bytes(b"half")
    marker = read_json(final / "000004_stats.json")
    (final / "000004_stats.json").write_text(json.dumps({**marker, "plan_digest": "other"}))
    (final / "manifest.json").unlink()
    (final / "sizes.json").unlink()
    resumed = run(spark, build_options(dataset, *args))
    assert resumed["shards_resumed"] == first["shards"] - 3
    assert (final / "manifest.json").read_bytes() == manifest and (final / "sizes.json").read_bytes() == sizes
    assert not list(final.rglob("*.tmp.*"))
    assert selection(dataset) == records


@pytest.mark.slow
def test_resume_with_other_options_or_inputs_is_refused(spark, dataset: Path) -> None:
    run(spark, build_options(dataset, "--top-fraction", "0.5", "--samples-per-shard", "8"))
    with pytest.raises(UserInputError, match="other options: samples_per_shard, top_fraction"):
        run(spark, build_options(dataset, "--top-fraction", "0.6", "--samples-per-shard", "9"))
    # Options that do not change the output may differ.
    same = ("--top-fraction", "0.5", "--samples-per-shard", "8")
    run(spark, build_options(dataset, *same, "--min-shards", "1"))
    plant_matches(dataset)  # dedup ran since
    with pytest.raises(UserInputError, match="other inputs: matches changed"):
        run(spark, build_options(dataset, "--top-fraction", "0.5", "--samples-per-shard", "8"))
    summary = run(
        spark, build_options(dataset, "--top-fraction", "0.6", "--samples-per-shard", "9", "--overwrite")
    )
    assert summary["shards_resumed"] == 0 and summary["dropped"]["benchmark_duplicate"] == 3
    assert read_json(dataset / "final" / "_options.json")["options"]["samples_per_shard"] == 9


def test_no_sample_left_is_an_error(spark, dataset: Path) -> None:
    with pytest.raises(UserInputError, match="no sample .* passes the selection"):
        run(spark, build_options(dataset, "--min-caption-length", "100000"))
