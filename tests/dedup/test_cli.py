"""jobs/dedup.py as users run it: spark-submit, --help, clear refusals, docs list every option."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline.dedup.options import DedupOptions
from tests.conftest import SparkSubmit
from tests.stages import dedup_options as options_from_args
from tests.stages import parser


def test_help_and_docs_list_every_option(spark_submit: SparkSubmit) -> None:
    result = spark_submit("dedup", "--help")
    assert result.returncode == 0, result.stderr
    doc = (Path(__file__).parents[2] / "docs" / "dedup.md").read_text()
    for action in parser("dedup")._actions:
        for flag in action.option_strings:
            assert flag in result.stdout
            if flag not in ("-h", "--help"):
                assert f"`{flag}`" in doc, f"{flag} is missing from docs/dedup.md"


@pytest.mark.slow
def test_spark_submit_dedup_end_to_end(
    downloaded: Path, world: Path, tmp_path: Path, spark_submit: SparkSubmit
) -> None:
    dataset = tmp_path / "dataset"
    shutil.copytree(downloaded / "raw", dataset / "raw")
    result = spark_submit(
        "dedup", "--dataset", str(dataset), "--benchmark", str(world / "benchmark"), timeout=400
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "dedup summary" in output and "benchmark duplicates" in output
    assert (dataset / "dedup" / "matches.parquet").exists()
    assert (dataset / "dedup" / "audit" / "index.html").exists()
    missing = spark_submit("dedup", "--dataset", str(dataset), "--benchmark", str(tmp_path / "nowhere"))
    assert missing.returncode == 2
    text = missing.stdout + missing.stderr
    assert "nowhere: no such file or folder" in text and "SparkContext" not in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-distance", "40"], "--max-distance must be in 0..32"),
        (["--near-duplicate-distance", "-1"], "--near-duplicate-distance must be in 0..32"),
        (["--no-within-corpus"], "nothing to do"),
        (["--audit-limit", "-2"], "--audit-limit must be >= 0"),
        (["--benchmark", "b", "--layout-min-similarity", "0"], "--layout-min-similarity must be in (0, 1]"),
    ],
)
def test_bad_options_are_refused(args: list[str], message: str, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        options_from_args(["--dataset", "d", *args])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_repeatable_benchmark_flag() -> None:
    options = options_from_args(
        ["--dataset", "d", "--benchmark", "a", "--benchmark", "b", "--flip-invariant"]
    )
    assert options == DedupOptions(dataset="d", benchmarks=("a", "b"), flip_invariant=True)
