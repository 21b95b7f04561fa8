"""Which failed rows ``--retry-failed [CLASSES]`` redoes: error classes, and HTTP statuses for ``http_error``.

``CLASSES`` is a comma-separated list of tokens:

- an error class of a fetched row (``timeout``, ``dns_error``, ``tls_error``, ...): every failed
  row of that class; ``http_error`` alone: every HTTP status;
- ``http_error:NNN`` (one status, e.g. ``http_error:403``) or ``http_error:Nxx`` (a hundred, e.g.
  ``http_error:5xx``);
- ``retryable`` (what ``--retry-failed`` alone means): the failures that may go away by
  themselves, :data:`RETRYABLE`.

Skipped rows (unusable input, duplicates) are never retried: their outcome does not depend on
the network.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.errors import ErrorClass, UserInputError

RETRYABLE_TOKEN = "retryable"
#: ``--retry-failed`` alone: the network failures that are often transient. ``connect_error``
#: and ``dns_error`` are here although the fetcher does not retry them within a run: a host
#: that is down or a resolver that is overloaded for an hour recovers by the next run, as does
#: ``robots_unreachable`` (robots.txt answered 5xx or 429: the site was unwell, not refusing).
#: ``tls_error`` (a refused certificate stays refused), ``proxy_error`` (a set-up problem) and
#: everything decided by the content are not.
RETRYABLE = (
    "timeout",
    "connection_reset",
    "connect_error",
    "dns_error",
    "robots_unreachable",
    "http_error:408",
    "http_error:429",
    "http_error:5xx",
)
_NOT_FETCHED = {
    ErrorClass.MISSING_URL,
    ErrorClass.INVALID_URL,
    ErrorClass.UNSUPPORTED_SCHEME,
    ErrorClass.NON_UTF8_CAPTION,
    ErrorClass.EMPTY_CAPTION,
    ErrorClass.MALFORMED_ROW,
    ErrorClass.DUPLICATE_PAIR,
    ErrorClass.DUPLICATE_URL,
    ErrorClass.URL_ALREADY_STORED,
    ErrorClass.URL_ALREADY_FAILED,
}
HTTP = ErrorClass.HTTP_ERROR.value


def failure_classes() -> list[str]:
    """Error classes a fetched row can fail with (what CLASSES may name)."""
    return sorted(c.value for c in ErrorClass if c not in _NOT_FETCHED)


@dataclass(frozen=True)
class RetrySelection:
    """A parsed CLASSES list: whole classes, and for ``http_error`` statuses or status hundreds."""

    tokens: tuple[str, ...]
    classes: frozenset[str]  # every row of these classes
    http_statuses: frozenset[int]  # http_error rows with one of these statuses
    http_hundreds: frozenset[int]  # http_error rows whose status // 100 is one of these

    def matches(self, error_class: str | None, http_status: int | None) -> bool:
        """Whether a failed row with this class (and status) is retried."""
        if error_class is None:
            return False
        if error_class in self.classes:
            return True
        if error_class != HTTP or http_status is None:
            return False
        return http_status in self.http_statuses or http_status // 100 in self.http_hundreds

    def row_matches(self, row: Mapping[str, Any]) -> bool:
        """Whether a raw parquet row is retried (failed rows only)."""
        return row["status"] == "failed" and self.matches(row["error_class"], row["http_status"])

    def may_match(self, errors: Mapping[str, int]) -> bool:
        """Whether a shard with these failure counts (its marker's ``errors``) may hold a row to retry."""
        wanted = self.classes | ({HTTP} if self.http_statuses or self.http_hundreds else set())
        return any(errors.get(name) for name in wanted)


def parse_retry_classes(tokens: Iterable[str]) -> RetrySelection:
    """Parse CLASSES (already split at commas); raise ``UserInputError`` naming a bad token."""
    given = tuple(tokens)
    expanded: list[str] = []
    for token in given:
        expanded.extend(RETRYABLE if token == RETRYABLE_TOKEN else (token,))
    known = set(failure_classes())
    classes: set[str] = set()
    statuses: set[int] = set()
    hundreds: set[int] = set()
    for token in expanded:
        name, _, status = token.partition(":")
        if name not in known:
            raise UserInputError(
                f"--retry-failed: {token!r} is not a failure class of a fetched row; use "
                f"{RETRYABLE_TOKEN}, http_error:NNN, http_error:Nxx or one of {', '.join(sorted(known))}"
            )
        if not status:
            classes.add(name)
        elif name != HTTP:
            raise UserInputError(f"--retry-failed: only http_error takes a status, not {token!r}")
        elif len(status) == 3 and status[0] in "12345" and status[1:] == "xx":
            hundreds.add(int(status[0]))
        elif status.isdigit() and 100 <= int(status) <= 599:
            statuses.add(int(status))
        else:
            raise UserInputError(
                f"--retry-failed: {token!r}: a status is three digits (http_error:503) or a hundred "
                "(http_error:5xx)"
            )
    if not given:
        raise UserInputError("--retry-failed: no class given")
    return RetrySelection(given, frozenset(classes), frozenset(statuses), frozenset(hundreds))
