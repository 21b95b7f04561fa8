"""Aliases of command-line options (img2dataset's spellings): same field, hidden, listed once."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from pipeline.cli_options import option, options_parser, parse_options


@dataclass(frozen=True)
class _Options:
    urls: str = option(help="the list", aliases=("--url_list",))
    count: int = option(3, help="how many", aliases=("--thread_count",))
    only_bigger: bool = option(False, help="never upscale", aliases=("--resize_only_if_bigger",))
    keep: bool = option(True, negate="--no-keep", help="keep it", aliases=("--keep_it",))
    cols: tuple[str, ...] = option((), repeat=True, help="columns", aliases=("--col",))


def _parse(*argv: str) -> _Options:
    return parse_options(_Options, options_parser(_Options, "prog", "test"), list(argv))


def test_alias_sets_the_same_field_as_the_option() -> None:
    assert _parse("--url_list", "a.parquet", "--thread_count=5") == _Options(urls="a.parquet", count=5)
    assert _parse("--urls", "a", "--col", "x", "--col=y").cols == ("x", "y")
    assert _parse("--urls", "a", "--col", "x").cols == ("x",)


def test_bool_alias_takes_img2dataset_values() -> None:
    assert _parse("--urls", "a", "--resize_only_if_bigger").only_bigger is True
    assert _parse("--urls", "a", "--resize_only_if_bigger=True").only_bigger is True
    assert _parse("--urls", "a", "--resize_only_if_bigger=False").only_bigger is False
    assert _parse("--urls", "a", "--keep_it=False").keep is False
    assert _parse("--urls", "a").keep is True
    with pytest.raises(SystemExit):
        _parse("--urls", "a", "--resize_only_if_bigger=maybe")


def test_required_option_given_by_its_alias_or_missing(capsys: pytest.CaptureFixture[str]) -> None:
    assert _parse("--url_list", "x").urls == "x"
    with pytest.raises(SystemExit):
        _parse("--count", "4")
    assert "required: --urls or --url_list" in capsys.readouterr().err


def test_help_lists_aliases_in_one_line_only() -> None:
    text = options_parser(_Options, "prog", "test").format_help()
    assert "--url_list" not in text.split("img2dataset aliases:")[0]
    line = " ".join(text.split("img2dataset aliases:")[1].split())
    assert line.startswith("--url_list=--urls, --thread_count=--count")
    assert "--keep_it=--no-keep when False" in line
    assert "--resize_only_if_bigger=--only-bigger" in line and line.endswith("--col=--cols.")


def test_comma_strings_take_img2dataset_list_syntax() -> None:
    from pipeline.cli_options import comma_strings

    assert comma_strings("a, b,,c") == ("a", "b", "c")
    assert comma_strings("['a', \"b\"]") == ("a", "b")
    assert comma_strings("(noai,noindex)") == ("noai", "noindex")
    assert comma_strings("[]") == ()
