"""What a host's robots.txt and tdmrep.json say, decided once per host and cached per process.

:class:`SiteRules` is one origin's (scheme, host, port) answer; :meth:`SiteRules.check` is the
per-request test (a few prefix or pattern matches, nothing when the host sets no rules).
:class:`SiteRulesCache` keeps them for ``--robots-ttl`` seconds in an executor process, across its
tasks; failures are kept for at most :data:`FAILURE_TTL` seconds so that a host that was down is
asked again later. The fetcher (:mod:`pipeline.fetch.client`) fetches the files through its own
machinery (address policy, proxy, TLS, per-host limits) and turns each outcome into rules here:

robots.txt (RFC 9309 2.3.1):

- 2xx: parsed (the first 512 KiB); 4xx other than 429 ("unavailable"): no restrictions; more
  redirects than ``--max-redirects``, or one to a URL that cannot or may not be fetched (a
  ``--block-list`` host): no restrictions;
- 5xx and 429, after the usual retries ("unreachable"): everything disallowed, each row failing
  ``robots_unreachable`` (429 is read as a server error, as Google does: a host that is shedding
  load is not one to crawl);
- no answer at all (DNS, refused address, connect, TLS, proxy, reset, timeout): everything
  disallowed, each row failing with that same class (the image request would have met it too).

tdmrep.json: a 2xx JSON array gives rules; anything else (absent, unreachable, malformed) means
the host does not use the protocol.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from pipeline.errors import ErrorClass, SampleError
from pipeline.fetch.robots_txt import ALLOW_ALL, PRODUCT_TOKEN, RobotsRules, parse_robots
from pipeline.fetch.tdmrep import NO_TDMREP, WELL_KNOWN_PATH, TdmRep

log = logging.getLogger(__name__)

MAX_ENTRIES = 100_000  # origins whose rules one process keeps
FAILURE_TTL = 300.0  # seconds an unreachable robots.txt keeps its host disallowed before a new try
ROBOTS_PATH = "/robots.txt"
# Failures of a robots.txt request that mean "the host cannot be reached": rows fail as the image
# request would have.
_UNREACHABLE_CLASSES = frozenset(
    {
        ErrorClass.DNS_ERROR,
        ErrorClass.ADDRESS_REFUSED,
        ErrorClass.CONNECT_ERROR,
        ErrorClass.TLS_ERROR,
        ErrorClass.PROXY_ERROR,
        ErrorClass.CONNECTION_RESET,
        ErrorClass.TIMEOUT,
    }
)
# Failures that say nothing about the host's wishes: as if there were no robots.txt.
_UNAVAILABLE_CLASSES = frozenset(
    {
        ErrorClass.TOO_MANY_REDIRECTS,
        ErrorClass.INVALID_URL,
        ErrorClass.UNSUPPORTED_SCHEME,
        ErrorClass.BLOCKED_URL,  # redirected to a URL or host of a --block-list
        ErrorClass.BLOCKED_DOMAIN,
    }
)

OriginKey = tuple[str, str, int]


@dataclass(frozen=True)
class SiteRules:
    """One origin's robots.txt rules, TDMRep rules, or the failure that disallows everything."""

    origin: str  # scheme://host:port, for messages
    robots: RobotsRules = ALLOW_ALL
    tdm: TdmRep = NO_TDMREP
    failure: tuple[ErrorClass, str, int | None] | None = None  # class, message, HTTP status

    def check(self, path: str) -> None:
        """Raise ``SampleError`` when the rules forbid requesting ``path`` (path and query as sent)."""
        if self.failure is not None:
            raise SampleError(*self.failure)
        rule = self.robots.disallowing_rule(path)
        if rule is not None:
            group = f"'{PRODUCT_TOKEN}'" if self.robots.group == PRODUCT_TOKEN else "'*'"
            raise SampleError(
                ErrorClass.ROBOTS_DISALLOWED,
                f"{self.origin}{ROBOTS_PATH} disallows {path[:200]} for user agent {group} ({rule})",
            )
        reserved = self.tdm.reservation(path)
        if reserved is not None:
            policy = f"; policy {reserved.policy}" if reserved.policy else ""
            raise SampleError(
                ErrorClass.TDM_RESERVED,
                f"{self.origin}{WELL_KNOWN_PATH} reserves TDM rights on {path[:200]} "
                f"(location {reserved.pattern.text!r}{policy})",
            )

    @property
    def failed(self) -> bool:
        return self.failure is not None


def robots_from_response(status: int, body: bytes) -> RobotsRules | tuple[ErrorClass, str, int]:
    """Rules from a robots.txt answer with ``status``, or the failure (class, reason, status)."""
    if 200 <= status < 300:
        return parse_robots(body)
    if status == 429 or status >= 500:
        return (
            ErrorClass.ROBOTS_UNREACHABLE,
            f"answered HTTP {status}: RFC 9309 means no URL of the host may be fetched",
            status,
        )
    return ALLOW_ALL  # 4xx: unavailable, no restrictions (3xx past the redirect limit too)


def robots_from_error(exc: SampleError) -> RobotsRules | tuple[ErrorClass, str, int | None]:
    """Rules (none) or the failure (class, reason, status) when a robots.txt request failed."""
    if exc.error_class in _UNAVAILABLE_CLASSES:
        return ALLOW_ALL
    if exc.http_status is not None and exc.error_class is ErrorClass.HTTP_ERROR:
        answered = robots_from_response(exc.http_status, b"")
        if isinstance(answered, tuple):
            return answered
        return ALLOW_ALL
    if exc.error_class in _UNREACHABLE_CLASSES:
        return exc.error_class, f"unreachable: {exc.message}", exc.http_status
    return ErrorClass.ROBOTS_UNREACHABLE, f"unreadable: {exc.message}", exc.http_status


def failure_of(origin: str, cause: tuple[ErrorClass, str, int | None]) -> tuple[ErrorClass, str, int | None]:
    """The per-row failure for an origin whose robots.txt failed with ``cause``."""
    error_class, reason, status = cause
    return error_class, f"{origin}{ROBOTS_PATH} {reason}", status


class SiteRulesCache:
    """Rules per origin for one process: ``get`` is a dict lookup and a clock read."""

    def __init__(
        self, ttl: float, failure_ttl: float = FAILURE_TTL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.failure_ttl = min(ttl, failure_ttl)
        self._clock = clock
        self._entries: dict[OriginKey, tuple[float, SiteRules]] = {}
        self.loads = 0  # origins fetched (robots.txt and/or tdmrep.json) by this process

    def get(self, key: OriginKey) -> SiteRules | None:
        """The cached rules of ``key``, or None when absent or expired."""
        entry = self._entries.get(key)
        if entry is None or entry[0] <= self._clock():
            return None
        return entry[1]

    def put(self, key: OriginKey, rules: SiteRules) -> None:
        """Keep ``rules`` for the TTL (the failure TTL when they record a failure)."""
        self.loads += 1
        ttl = self.failure_ttl if rules.failed else self.ttl
        self._entries.pop(key, None)  # re-inserted last: the order is the age
        self._entries[key] = (self._clock() + ttl, rules)
        if len(self._entries) > MAX_ENTRIES:
            # Bounded memory over a long job: drop the older half (insertion order), to be fetched
            # again if their hosts come back.
            for stale in list(self._entries)[: MAX_ENTRIES // 2]:
                del self._entries[stale]
