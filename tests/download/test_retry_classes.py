"""Which failed rows --retry-failed CLASSES selects."""

from __future__ import annotations

import pytest

from pipeline.download.retry_classes import RETRYABLE, parse_retry_classes
from pipeline.errors import UserInputError
from tests.stages import download_options


def test_the_default_is_the_transient_failures() -> None:
    default = parse_retry_classes(["retryable"])
    for error, status in (
        ("timeout", None),
        ("connection_reset", None),
        ("connect_error", None),
        ("dns_error", None),
        ("http_error", 408),
        ("http_error", 429),
        ("http_error", 500),
        ("http_error", 503),
        ("http_error", 522),
    ):
        assert default.matches(error, status), (error, status)
    for error, status in (
        ("http_error", 404),
        ("http_error", 403),
        ("http_error", None),
        ("tls_error", None),
        ("proxy_error", None),
        ("undecodable", 200),
        ("opted_out", 200),
        (None, None),
    ):
        assert not default.matches(error, status), (error, status)
    assert default.may_match({"http_error": 3}) and default.may_match({"timeout": 1})
    assert not default.may_match({"undecodable": 5, "duplicate_pair": 1})


def test_classes_statuses_and_hundreds() -> None:
    chosen = parse_retry_classes(["http_error:404", "tls_error", "http_error:4xx"])
    assert chosen.matches("tls_error", None) and chosen.matches("http_error", 404)
    assert chosen.matches("http_error", 410) and not chosen.matches("http_error", 503)
    assert not chosen.matches("timeout", None)
    every_http = parse_retry_classes(["http_error"])
    assert every_http.matches("http_error", 404) and every_http.matches("http_error", None)
    row = {"status": "skipped", "error_class": "http_error", "http_status": 404}
    assert not every_http.row_matches(row)  # only failed rows
    assert every_http.row_matches({**row, "status": "failed"})
    assert parse_retry_classes(["retryable", "tls_error"]).classes >= {"timeout", "tls_error"}
    assert "http_error:5xx" in RETRYABLE


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        (["duplicate_pair"], "not a failure class"),
        (["missing_url"], "not a failure class"),
        (["timeouts"], "not a failure class"),
        (["timeout:500"], "only http_error takes a status"),
        (["http_error:5x"], "three digits"),
        (["http_error:999"], "three digits"),
        ([], "no class"),
    ],
)
def test_bad_classes_are_refused(tokens: list[str], message: str) -> None:
    with pytest.raises(UserInputError, match=message):
        parse_retry_classes(tokens)


def test_the_command_line() -> None:
    base = ["--urls", "a.txt", "--dataset", "d"]
    assert download_options(base).retry_failed == ()
    assert download_options([*base, "--retry-failed"]).retry_failed == ("retryable",)
    assert download_options([*base, "--retry-failed", "timeout,http_error:404"]).retry_failed == (
        "timeout",
        "http_error:404",
    )
    with pytest.raises(SystemExit):
        download_options([*base, "--retry-failed", "bogus"])
    with pytest.raises(SystemExit):
        download_options([*base, "--append-skip-urls", "stored"])  # needs --append
    with pytest.raises(SystemExit):
        download_options([*base, "--append", "--append-skip-urls", "everything"])
    with pytest.raises(SystemExit):
        download_options([*base, "--overwrite", "--append"])
