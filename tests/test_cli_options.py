"""Command lines built from options dataclasses: each default written once, shown in --help."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

import pytest

from pipeline.cli_options import (
    comma_floats,
    comma_strings,
    option,
    options_parser,
    parse_options,
    recorded,
    section,
)
from pipeline.errors import UserInputError


class Mode(enum.Enum):
    FAST = "fast"
    EXACT = "exact"


@dataclass(frozen=True)
class Inner:
    size: int = option(256, help="side in pixels", group="image")
    mode: Mode = option(Mode.FAST, help="hash mode", choices=("fast", "exact"), group="image")


@dataclass(frozen=True)
class Outer:
    dataset: str = option(help="dataset root")
    ratio: float = option(0.5, help="a share")
    names: tuple[str, ...] = option((), help="repeatable", flag="--name", repeat=True)
    dry: bool = option(False, help="only plan")
    check: bool = option(True, help="check things", negate="--no-check")
    shuffle: bool = option(True, help="shuffle", toggle=True)
    cuts: tuple[float, ...] = option((0.1, 0.2), help="cuts", parse=comma_floats)
    inner: Inner = section(Inner, "inner")

    def __post_init__(self) -> None:
        if not 0 <= self.ratio <= 1:
            raise UserInputError(f"--ratio must be in [0, 1], got {self.ratio}")


def _parse(*argv: str) -> Outer:
    return parse_options(Outer, options_parser(Outer, "prog", "test"), list(argv))


def test_defaults_come_from_the_dataclass() -> None:
    parsed = _parse("--dataset", "d")
    assert parsed == Outer(dataset="d")
    assert parsed.inner == Inner() and parsed.inner.mode is Mode.FAST


def test_every_kind_of_option_parses() -> None:
    parsed = _parse(
        "--dataset", "d", "--ratio", "0.25", "--name", "a", "--name", "b", "--dry", "--no-check",
        "--no-shuffle", "--cuts", "0.3, 0.4", "--size", "64", "--mode", "exact",
    )  # fmt: skip
    assert parsed == Outer(
        dataset="d",
        ratio=0.25,
        names=("a", "b"),
        dry=True,
        check=False,
        shuffle=False,
        cuts=(0.3, 0.4),
        inner=Inner(size=64, mode=Mode.EXACT),
    )


def test_help_shows_every_default_once() -> None:
    text = options_parser(Outer, "prog", "test").format_help()
    assert "(default: 0.5)" in text and "(default: 256)" in text and "(default: fast)" in text
    assert "dataset root (required)" in text
    assert text.count("(default: 0.5)") == 1
    assert "\nimage:\n" in text  # the options' own group wins over the section's title


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--ratio", "x"], "invalid float value: 'x'"),
        (["--ratio", "2"], r"--ratio must be in \[0, 1\], got 2.0"),
        (["--cuts", "a,b"], "takes comma-separated numbers"),
        (["--mode", "slow"], "invalid choice: 'slow'"),
        ([], "the following arguments are required: --dataset"),
    ],
)
def test_bad_values_exit_with_a_usage_message_naming_the_option(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = argv if not argv else ["--dataset", "d", *argv]
    with pytest.raises(SystemExit) as exit_info:
        _parse(*args)
    assert exit_info.value.code == 2
    assert re.search(message, capsys.readouterr().err)


def test_recorded_options_are_plain_json_data() -> None:
    data = recorded(_parse("--dataset", "d", "--name", "a"))
    assert data["names"] == ["a"] and data["inner"] == {"size": 256, "mode": "fast"}


def test_mutable_defaults_are_refused() -> None:
    with pytest.raises(TypeError, match="mutable defaults"):
        option([], help="no")


@dataclass(frozen=True)
class WithConst:
    retry: tuple[str, ...] = option((), help="classes to retry", parse=comma_strings, const="retryable")


def test_an_option_with_const_takes_an_optional_value() -> None:
    parser = options_parser(WithConst, "prog", "test")
    assert parse_options(WithConst, parser, []).retry == ()
    assert parse_options(WithConst, parser, ["--retry"]).retry == ("retryable",)
    given = parse_options(WithConst, parser, ["--retry", "timeout,dns_error"])
    assert given.retry == ("timeout", "dns_error")
    assert "alone: retryable" in parser.format_help()
