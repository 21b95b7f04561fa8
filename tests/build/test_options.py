"""Command-line options of build_shards: defaults, and bad values refused at parse time."""

from __future__ import annotations

import math

import pytest

from tests.stages import build_options as options_from_args
from tests.stages import parser


def test_defaults() -> None:
    options = options_from_args(["--dataset", "d"])
    assert options.samples_per_shard == 10_000 and options.min_shards == 16 and options.seed == 0
    assert options.min_clip_score is None and options.top_fraction is None and not options.score_filter
    assert math.isinf(options.max_aspect_ratio) and options.output_options()["max_aspect_ratio"] is None
    assert not options.keep_corpus_duplicates and not options.require_dedup


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--min-clip-score", "1.5"], "--min-clip-score must be in [-1, 1]"),
        (["--min-clip-score", "abc"], "invalid float value"),
        (["--top-fraction", "0"], "--top-fraction must be in (0, 1]"),
        (["--top-fraction", "1.01"], "--top-fraction must be in (0, 1]"),
        (["--top-fraction", "nan"], "--top-fraction must be in (0, 1]"),
        (["--min-clip-score", "0.3", "--top-fraction", "0.5"], "mutually exclusive"),
        (["--samples-per-shard", "0"], "--samples-per-shard must be >= 1"),
        (["--max-aspect-ratio", "0.5"], "--max-aspect-ratio must be >= 1"),
        (["--min-caption-length", "-1"], "--min-caption-length must be >= 0"),
        (["--min-image-size", "-3"], "--min-image-size must be >= 0"),
        (["--min-shards", "-1"], "--min-shards must be >= 0"),
        (["--include-uids", "subset.csv"], "--include-uids subset.csv: unknown extension .csv"),
        (["--exclude-uids", "subset"], "--exclude-uids subset: unknown extension (none)"),
        # caption rules (issue 18)
        (["--languages", ","], "--languages needs at least one language code"),
        (["--min-caption-words", "-1"], "--min-caption-words must be >= 0"),
        (["--max-symbol-share", "1.5"], "--max-symbol-share must be in [0, 1]"),
        (["--max-repeated-chars", "-1"], "--max-repeated-chars must be >= 0"),
        (["--max-caption-repeats", "-2"], "--max-caption-repeats must be >= 0"),
    ],
)
def test_bad_options_are_refused(args: list[str], message: str, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        options_from_args(["--dataset", "d", *args])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_every_option_has_help_and_a_shown_default() -> None:
    text = " ".join(parser("build").format_help().split())
    for action in parser("build")._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, action.dest
    assert "(default: 10000)" in text and "(default: 16)" in text
