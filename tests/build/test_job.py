"""The build_shards job on a real downloaded and scored dataset, with Spark.

Expected selections are recomputed in plain Python (tests/build/expected.py) from raw/, scores/
and the matches written by the test, independently of the Spark code under test.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from pipeline.errors import UserInputError
from pipeline.runner import FINGERPRINT_KEY
from schemas.dedup import MATCHES_VERSION
from schemas.raw_shard import RAW_SHARD_VERSION
from schemas.scores import SCORES_VERSION
from schemas.selection import SELECTION_VERSION
from tests.build.conftest import build_options, raw_rows, read_final, read_json, scores, selection
from tests.build.expected import ORDER, check_final, expected_reasons, plant_matches
from tests.stages import build as run


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
    assert manifest["upstream"]["schemas"] == {
        "raw_shard": RAW_SHARD_VERSION,
        "scores": SCORES_VERSION,
        "matches": MATCHES_VERSION,
        "selection": SELECTION_VERSION,
    }
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
    (final / "sizes.json").unlink()  # a finished build missing a file is not finished
    assert run(spark, build_options(dataset, *args))["shards_resumed"] == first["shards"]
    assert (final / "sizes.json").read_bytes() == sizes

    # The states a killed run leaves: a tar renamed without its marker, a lost tar, a half
    # written temporary file, a marker of another plan (no manifest yet: see test_kill_resume).
    (final / "000001_stats.json").unlink()
    (final / "000001.tar").write_bytes(b"garbage")
    (final / "000002.tar").unlink()
    (final / "000002_stats.json").unlink()
    (final / "000003.tar.tmp.0123456789ab").write_bytes(b"half")
    (final / "_selection" / "_00000.parquet.tmp.0123456789ab").write_bytes(b"half")
    marker = read_json(final / "000004_stats.json")
    (final / "000004_stats.json").write_text(json.dumps({**marker, FINGERPRINT_KEY: "other"}))
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
