"""``corpusforge train`` as users run it: help, docs, errors, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli import build_parser, main
from pipeline.train.options import TrainerOptions, options_from_args
from pipeline.train.options import build_parser as train_parser

REPO = Path(__file__).resolve().parents[2]


def cli(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pipeline.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO, env=os.environ)


def test_help_lists_every_option_with_its_default_and_the_docs_cover_them() -> None:
    result = cli("train", "--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    doc = (REPO / "docs" / "train.md").read_text()
    flags = [f for a in train_parser()._actions for f in a.option_strings if f not in ("-h", "--help")]
    assert len(flags) > 35
    for flag in flags:
        assert flag in text
        assert f"`{flag}`" in doc, f"{flag} is missing from docs/train.md"
    assert "(default: corpusforge-tiny)" in text and "(default: 1000)" in text


def test_options_are_a_frozen_dataclass_with_the_documented_defaults() -> None:
    options = options_from_args(["--shards", "d/{0..1}.tar"])
    assert options == TrainerOptions(shards="d/{0..1}.tar")
    with pytest.raises(AttributeError):
        options.steps = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--batch-size", "0", "--batch-size must be >= 1"),
        ("--workers", "-1", "--workers must be >= 0"),
        ("--precision", "fp8", "invalid choice"),
        ("--lr", "0", "--lr must be > 0"),
    ],
)
def test_bad_options_exit_with_usage(flag: str, value: str, message: str, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        options_from_args(["--shards", "x.tar", flag, value])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_shards_exit_2_with_the_names(tmp_path: Path, caplog) -> None:
    code = main(["train", "--shards", f"{tmp_path}/{{000000..000001}}.tar", "--output", str(tmp_path / "o")])
    assert code == 2
    assert "2 of 2 shards not found" in caplog.text and "000001.tar" in caplog.text


def test_the_other_subcommands_still_parse() -> None:
    parser = build_parser()
    assert parser.parse_args(["demo"]).command == "demo"
    assert parser.parse_args(["synth", "--out", "w"]).command == "synth"
    assert parser.parse_args(["serve-world", "--world", "w"]).command == "serve-world"
    assert parser.parse_args(["serve", "--model", "m"]).command == "serve"
    assert parser.parse_args(["export", "--checkpoint", "c", "--output", "o"]).command == "export"


@pytest.mark.parametrize(
    "command", ["demo", "synth", "serve-world", "serve", "export", "explore", "train", "report"]
)
def test_every_subcommand_shows_each_default_once(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # One line per help text: argparse's wrapping would break "bert-chinese" at its hyphen.
    monkeypatch.setenv("COLUMNS", "100000")
    sub = build_parser()._subparsers._group_actions[0].choices[command]  # type: ignore[union-attr]
    text = " ".join(sub.format_help().split())
    assert "(default: None)" not in text
    for action in sub._actions:
        if action.help and "(default:" in action.help:
            assert action.help.count("(default:") == 1, action.help
            assert " ".join(action.help.split()) in text


def test_synth_draws_the_world_its_options_describe(tmp_path: Path) -> None:
    code = main(["synth", "--out", str(tmp_path / "w"), "--images", "6", "--benchmark-images", "2",
                 "--planted-duplicates", "1", "--max-side", "96", "--min-side", "64"])  # fmt: skip
    assert code == 0
    spec = json.loads((tmp_path / "w" / "world.json").read_text())["spec"]
    assert (spec["images"], spec["benchmark_images"], spec["max_side"]) == (6, 2, 96)
    assert spec["mismatch_fraction"] == 0.2  # a default, from WorldSpec
    assert main(["synth", "--out", str(tmp_path / "x"), "--images", "many"]) == 2
