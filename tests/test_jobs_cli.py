"""The job entry points as users run them: spark-submit jobs/download.py."""

from __future__ import annotations

from argparse import SUPPRESS
from pathlib import Path

import pytest

from tests.conftest import SparkSubmit
from tests.stages import download_options as options_from_args
from tests.stages import parser


def test_help_lists_every_option_with_its_default(spark_submit: SparkSubmit) -> None:
    result = spark_submit("download", "--help")
    assert result.returncode == 0, result.stderr
    for action in parser("download")._actions:
        for flag in action.option_strings:
            assert flag in result.stdout
    text = " ".join(result.stdout.split())
    assert "(default: 256)" in text and "(default: border)" in text
    # Not -h, nor the hidden aliases (img2dataset's spellings, listed in one line at the end).
    options = sum(1 for a in parser("download")._actions if a.option_strings and a.help != SUPPRESS) - 1
    assert text.count("default:") + text.count("(required)") == options


def test_missing_url_list_is_a_clear_error(tmp_path: Path, spark_submit: SparkSubmit) -> None:
    result = spark_submit(
        "download", "--urls", str(tmp_path / "nope.parquet"), "--dataset", str(tmp_path / "ds")
    )
    assert result.returncode == 2
    # spark-submit merges the driver's stderr into its stdout.
    output = result.stdout + result.stderr
    assert "nope.parquet" in output and "does not exist" in output
    assert "SparkContext" not in output  # refused before Spark starts


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--encode-quality", "0", "--encode-quality must be in 1..100"),
        ("--allow-network", "not-a-cidr", "not an IP network"),
        ("--samples-per-shard", "0", "--samples-per-shard must be >= 1"),
        ("--resize-mode", "stretch", "invalid choice"),
    ],
)
def test_bad_options_are_refused_before_any_work(flag: str, value: str, message: str, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        options_from_args(["--urls", "x", "--dataset", "y", flag, value])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_address_policy_errors_surface_at_parse_time(capsys) -> None:
    options = options_from_args(["--urls", "x", "--dataset", "y", "--allow-network", "127.0.0.1/32"])
    assert options.fetch.allow_networks == ("127.0.0.1/32",)
    assert options.image.image_size == 256 and options.fetch.retries == 2


def test_every_option_is_documented() -> None:
    doc = (Path(__file__).parents[1] / "docs" / "download.md").read_text()
    for action in parser("download")._actions:
        for flag in action.option_strings:
            if flag not in ("-h", "--help"):
                assert f"`{flag}`" in doc, f"{flag} is missing from docs/download.md"


def test_score_help_and_docs_list_every_option(spark_submit: SparkSubmit) -> None:

    result = spark_submit("score", "--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    doc = (Path(__file__).parents[1] / "docs" / "score.md").read_text()
    for action in parser("score")._actions:
        for flag in action.option_strings:
            assert flag in text
            if flag not in ("-h", "--help"):
                assert f"`{flag}`" in doc, f"{flag} is missing from docs/score.md"
    assert "(default: 256)" in text


def test_score_job_refuses_a_missing_checkpoint_before_spark(
    tmp_path: Path, spark_submit: SparkSubmit
) -> None:
    (tmp_path / "ds" / "raw").mkdir(parents=True)
    (tmp_path / "ds" / "raw" / "00000_stats.json").write_text("{}")
    result = spark_submit(
        "score",
        "--dataset",
        str(tmp_path / "ds"),
        "--model",
        "corpusforge-tiny",
        "--pretrained",
        str(tmp_path / "nope.pt"),
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2 and "no such checkpoint" in output and "SparkContext" not in output


def test_build_shards_help_and_docs_list_every_option(spark_submit: SparkSubmit) -> None:

    result = spark_submit("build_shards", "--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    doc = (Path(__file__).parents[1] / "docs" / "build_shards.md").read_text()
    for action in parser("build")._actions:
        for flag in action.option_strings:
            assert flag in text
            if flag not in ("-h", "--help"):
                assert f"`{flag}`" in doc, f"{flag} is missing from docs/build_shards.md"
    assert "(default: 10000)" in text
    from schemas.selection import DROP_REASONS

    for reason in DROP_REASONS:
        assert f"`{reason}`" in doc, f"drop reason {reason} is missing from docs/build_shards.md"


def test_build_shards_refuses_a_score_rule_without_scores_before_spark(
    tmp_path: Path, spark_submit: SparkSubmit
) -> None:
    from testkit.raw_shards import fabricate_dataset

    fabricate_dataset(tmp_path / "ds", shards=1, samples_per_shard=5, scored=False)
    result = spark_submit("build_shards", "--dataset", str(tmp_path / "ds"), "--top-fraction", "0.3")
    output = result.stdout + result.stderr
    assert result.returncode == 2 and "--top-fraction needs CLIP scores" in output
    assert "SparkContext" not in output and not (tmp_path / "ds" / "final").exists()
