"""The error-rate warnings: DNS and timeout shares, one host behind most failures, no success."""

from __future__ import annotations

import pytest

from pipeline.download.error_rates import ErrorRateOptions, error_rate_warnings
from pipeline.download.summary import format_summary, warnings_summary
from pipeline.errors import UserInputError
from tests.stages import download_options

DEFAULTS = ErrorRateOptions()


def checks(
    status: dict, errors: dict, hosts: dict | None = None, options: ErrorRateOptions = DEFAULTS
) -> list:
    return [w["check"] for w in error_rate_warnings(status, errors, hosts or {}, options)]


def test_dns_and_timeout_shares_of_fetched_rows() -> None:
    # 1,000 rows, 200 skipped (never fetched): 800 fetched, 100 DNS failures = 12.5% > 10%.
    status = {"success": 600, "failed": 200, "skipped": 200}
    assert checks(status, {"dns_error": 100, "timeout": 80, "duplicate_pair": 200}) == ["dns_error_rate"]
    assert checks(status, {"dns_error": 80, "timeout": 81}) == ["timeout_rate"]
    assert checks(status, {"dns_error": 80, "timeout": 80}) == []  # exactly 10%: not above
    message = error_rate_warnings(status, {"dns_error": 100}, {}, DEFAULTS)[0]
    assert message["value"] == 0.125 and message["threshold"] == 0.1
    assert "100 of 800 fetched rows (12.5%, above 10%)" in message["message"]
    # Thresholds are options; 1 turns a check off.
    assert checks(status, {"dns_error": 100}, options=ErrorRateOptions(warn_dns_rate=0.2)) == []
    assert checks(status, {"timeout": 800}, options=ErrorRateOptions(warn_timeout_rate=1)) == []


def test_small_downloads_do_not_warn_about_rates() -> None:
    status = {"success": 5, "failed": 5}
    assert checks(status, {"timeout": 5}, {"a.test": 5}) == []
    small = ErrorRateOptions(warn_min_rows=10)
    assert checks(status, {"timeout": 5}, {"a.test": 5}, small) == ["timeout_rate"]  # 5 failures < 10
    assert checks(status, {"timeout": 5}, {"a.test": 5}, ErrorRateOptions(warn_min_rows=5)) == [
        "timeout_rate",
        "host_share",
    ]


def test_one_host_behind_most_failures() -> None:
    status = {"success": 900, "failed": 300}
    hosts = {"cdn.example.com": 200, "other.test": 60, "third.test": 40}
    found = error_rate_warnings(status, {"http_error": 300}, hosts, DEFAULTS)
    assert [w["check"] for w in found] == ["host_share"]
    assert "cdn.example.com, accounts for 200 of 300 failed rows (66.7%, above 50%)" in found[0]["message"]
    assert checks(status, {"http_error": 300}, {"cdn.example.com": 150, "other.test": 150}) == []


def test_no_success_at_all() -> None:
    assert checks({"failed": 3}, {"address_refused": 3}) == ["no_success"]
    assert checks({"skipped": 3}, {"missing_url": 3}) == []  # nothing was fetched
    assert checks({}, {}) == []


def test_the_summary_prints_and_records_the_warnings() -> None:
    markers = [
        {
            "status": {"success": 50, "failed": 150},
            "errors": {"dns_error": 150},
            "failed_hosts": {"x.test": 100},
        },
        {"status": {"failed": 100}, "errors": {"dns_error": 100}, "failed_hosts": {"x.test": 100}},
    ]
    extra = warnings_summary(markers, DEFAULTS)
    assert [w["check"] for w in extra["warnings"]] == ["dns_error_rate", "host_share"]
    assert extra["warning_thresholds"] == {
        "warn_dns_rate": 0.1,
        "warn_timeout_rate": 0.1,
        "warn_host_share": 0.5,
        "warn_min_rows": 100,
    }
    summary = {
        "rows": 300,
        "input_rows": 300,
        "shards": 2,
        "shards_resumed": 0,
        "successes": 50,
        "failed": 250,
        "skipped": 0,
        "errors": {"dns_error": 250},
        "duplicates_found": {},
        "stored_bytes": 0,
        "seconds": 1.0,
        "images_per_second": None,
        **extra,
    }
    text = format_summary(summary)
    assert "WARNING: dns_error: 250 of 300 fetched rows (83.3%, above 10%)" in text
    assert "WARNING: one host, x.test, accounts for 200 of 250 failed rows" in text


def test_thresholds_are_download_options() -> None:
    options = download_options(
        ["--urls", "a.txt", "--dataset", "d", "--warn-dns-rate", "0.3", "--warn-min-rows", "0"]
    )
    assert options.warnings == ErrorRateOptions(warn_dns_rate=0.3, warn_min_rows=0)
    with pytest.raises(UserInputError, match="--warn-host-share"):
        ErrorRateOptions(warn_host_share=1.5)
