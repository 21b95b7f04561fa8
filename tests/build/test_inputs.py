"""Inputs checked on the driver before Spark starts: every missing or partial input is named."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.build.inputs import discover_inputs
from pipeline.errors import UserInputError
from tests.build.conftest import build_options, raw_rows, write_matches
from tests.stages import check_inputs


def test_a_complete_dataset_passes(dataset: Path, caplog) -> None:
    write_matches(dataset, [])
    inputs = discover_inputs(build_options(dataset, "--min-clip-score", "0.1", "--require-dedup"))
    assert inputs.raw_shards == inputs.scored_shards == (0, 1, 2)
    assert inputs.has_matches and inputs.score_model == "corpusforge-tiny"
    assert "WITHOUT dedup" not in caplog.text


def test_no_raw_shards(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="no complete raw shards: run jobs/download.py first"):
        check_inputs("build", build_options(tmp_path / "empty"))


def test_unfinished_download(dataset: Path) -> None:
    (dataset / "raw" / "00002_stats.json").unlink()
    with pytest.raises(UserInputError, match=r"not finished: 1 of 3 raw shards are incomplete \(00002\)"):
        check_inputs("build", build_options(dataset))


@pytest.mark.parametrize("flag", [["--min-clip-score", "0.2"], ["--top-fraction", "0.3"]])
def test_score_rule_without_scores(dataset: Path, flag: list[str]) -> None:
    shutil.rmtree(dataset / "scores")
    with pytest.raises(UserInputError, match=f"{flag[0]} needs CLIP scores but .*scores does not exist"):
        check_inputs("build", build_options(dataset, *flag))
    check_inputs("build", build_options(dataset))  # no score rule: scores are optional


def test_partial_or_stale_scores(dataset: Path, caplog) -> None:
    (dataset / "scores" / "00001_stats.json").unlink()
    with pytest.raises(UserInputError, match="1 of 3 raw shards have none .*: 00001"):
        check_inputs("build", build_options(dataset, "--top-fraction", "0.5"))
    with caplog.at_level(logging.WARNING):
        check_inputs("build", build_options(dataset))
    assert "1 of 3 raw shards are not scored" in caplog.text
    # A raw shard redone after scoring: its scores describe samples that may be gone.
    stats = dataset / "raw" / "00000_stats.json"
    stats.write_text(stats.read_text() + " ")
    with pytest.raises(UserInputError, match="2 of 3 raw shards have none .*: 00000, 00001"):
        check_inputs("build", build_options(dataset, "--min-clip-score", "0.2"))


def test_missing_dedup_warns_or_fails(dataset: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        check_inputs("build", build_options(dataset))
    assert "building WITHOUT dedup" in caplog.text
    with pytest.raises(UserInputError, match="--require-dedup: .*matches.parquet does not exist"):
        check_inputs("build", build_options(dataset, "--require-dedup"))


def test_matches_breaking_the_contract(dataset: Path) -> None:
    (dataset / "dedup").mkdir()
    path = dataset / "dedup" / "matches.parquet"
    pq.write_table(pa.table({"uid": ["a"], "reason": ["near_duplicate"]}), path)
    with pytest.raises(UserInputError, match="matches.parquet: schema does not match"):
        check_inputs("build", build_options(dataset))
    uid = next(iter(raw_rows(dataset)))
    write_matches(dataset, [{"uid": uid, "reason": "blurry", "match_id": "x", "distance": 0, "shard": 0}])
    with pytest.raises(UserInputError, match=r"unknown reason\(s\) \['blurry'\]"):
        check_inputs("build", build_options(dataset))
