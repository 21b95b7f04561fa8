"""Warnings when a download's error rates are unusual (img2dataset #223, #360).

A download that loses a third of its rows to DNS failures usually has an overloaded resolver,
not dead URLs; one whose failures all come from one host is being blocked or rate-limited by it;
one that stores nothing has a set-up problem (address policy, proxy, certificates). These are
easy to miss in a table of counts, so the summary, the log and the report say them in words.

Rates are shares of the *fetched* rows (rows minus skipped ones: skipped rows were never
requested). The checks and their options:

- ``dns_error`` rows above ``--warn-dns-rate`` of fetched rows;
- ``timeout`` rows above ``--warn-timeout-rate`` of fetched rows;
- one host (``host[:port]`` of the URL) behind more than ``--warn-host-share`` of the failed rows;
- no success at all among fetched rows.

The rate and host checks wait for ``--warn-min-rows`` fetched rows (the host check for as many
failed rows), so a small list does not warn about three timeouts. A threshold of 1 turns its
check off.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.cli_options import option
from pipeline.errors import UserInputError


@dataclass(frozen=True)
class ErrorRateOptions:
    """Thresholds of the error-rate warnings (shares of rows, 0..1)."""

    warn_dns_rate: float = option(0.1, help="warn when dns_error rows exceed this share of fetched rows")
    warn_timeout_rate: float = option(0.1, help="warn when timeout rows exceed this share of fetched rows")
    warn_host_share: float = option(
        0.5, help="warn when one host accounts for more than this share of failed rows"
    )
    warn_min_rows: int = option(
        100, help="fetched rows (failed rows for the host check) needed before the rate warnings apply"
    )

    def __post_init__(self) -> None:
        for name in ("warn_dns_rate", "warn_timeout_rate", "warn_host_share"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                flag = "--" + name.replace("_", "-")
                raise UserInputError(f"{flag} is a share of rows between 0 and 1, got {value}")
        if self.warn_min_rows < 0:
            raise UserInputError(f"--warn-min-rows must be >= 0, got {self.warn_min_rows}")


def merge_hosts(shard_stats: Iterable[Mapping[str, Any]]) -> Counter[str]:
    """Failed rows per host over shards (each marker keeps its shard's most frequent hosts)."""
    hosts: Counter[str] = Counter()
    for stats in shard_stats:
        hosts.update(stats.get("failed_hosts") or {})
    return hosts


def error_rate_warnings(
    status: Mapping[str, int],
    errors: Mapping[str, int],
    failed_hosts: Mapping[str, int],
    options: ErrorRateOptions,
) -> list[dict[str, Any]]:
    """The warnings for these counts: ``{"check", "message", "value", "threshold"}`` each."""
    rows = sum(status.values())
    fetched = rows - status.get("skipped", 0)
    failed = status.get("failed", 0)
    successes = status.get("success", 0)
    found: list[dict[str, Any]] = []
    if fetched > 0 and successes == 0:
        found.append(
            _warning(
                "no_success",
                f"no image was stored: all {fetched:,} fetched rows failed (check --allow-network, the "
                "proxy, certificates and DNS on the executors)",
                0.0,
                0.0,
            )
        )
    if fetched >= options.warn_min_rows and fetched > 0:
        for name, limit, advice in (
            (
                "dns_error",
                options.warn_dns_rate,
                "an overloaded or unreachable DNS resolver? see docs/download.md",
            ),
            ("timeout", options.warn_timeout_rate, "too many requests at once, or --timeout too short?"),
        ):
            count = errors.get(name, 0)
            share = count / fetched
            if share > limit and limit < 1:
                found.append(
                    _warning(
                        f"{name}_rate",
                        f"{name}: {count:,} of {fetched:,} fetched rows ({share:.1%}, above {limit:.0%}): "
                        + advice,
                        share,
                        limit,
                    )
                )
    if failed >= max(options.warn_min_rows, 1) and failed_hosts and options.warn_host_share < 1:
        host, count = max(failed_hosts.items(), key=lambda kv: (kv[1], kv[0]))
        share = count / failed
        if share > options.warn_host_share:
            found.append(
                _warning(
                    "host_share",
                    f"one host, {host}, accounts for {count:,} of {failed:,} failed rows ({share:.1%}, above "
                    f"{options.warn_host_share:.0%}): is it blocking or rate-limiting the crawler?",
                    share,
                    options.warn_host_share,
                )
            )
    return found


def _warning(check: str, message: str, value: float, threshold: float) -> dict[str, Any]:
    return {"check": check, "message": message, "value": round(value, 4), "threshold": threshold}
