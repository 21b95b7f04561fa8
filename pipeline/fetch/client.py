"""Asynchronous image fetcher: one connection pool per task, every request bounded.

Each request gets a connect timeout, a total deadline and a byte cap. Redirects are followed by
hand so every hop's URL and address pass the same checks as the first. Only retryable failures
(timeouts, resets, 429 and 5xx) are retried, with exponential backoff or the server's Retry-After.
The HTTP/1.1 transport is :mod:`pipeline.fetch.http11`.

Before a URL is requested: the ``--block-list`` URL and domain entries, then the host's
robots.txt and ``/.well-known/tdmrep.json`` (:mod:`pipeline.fetch.site_rules`), fetched once per
origin through this same client (one fetch shared by every request that waits for it) and cached
per executor process in a :class:`FetcherState`. Every request to a host, those two files
included, passes its :class:`~pipeline.fetch.politeness.HostGate` (in-flight cap, pacing, 429
backoff), sized from this task's share of the job's per-host budget.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import ipaddress
import logging
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

from pipeline.errors import ErrorClass, SampleError
from pipeline.fetch.address_policy import AddressPolicy
from pipeline.fetch.blocklist import BlockList
from pipeline.fetch.http11 import ConnectionPool, Response, Retryable, Target, parse_target, request
from pipeline.fetch.options import FetchOptions
from pipeline.fetch.politeness import HostGate, HostPace, HostShares, task_limits
from pipeline.fetch.proxy import ProxySettings
from pipeline.fetch.resolver import GetAddrInfo, PolicyResolver
from pipeline.fetch.robots import is_opted_out
from pipeline.fetch.robots_txt import ALLOW_ALL, PARSE_LIMIT
from pipeline.fetch.site_rules import (
    ROBOTS_PATH,
    OriginKey,
    SiteRules,
    SiteRulesCache,
    failure_of,
    robots_from_error,
    robots_from_response,
)
from pipeline.fetch.tdmrep import NO_TDMREP, WELL_KNOWN_PATH, header_reservation, parse_tdmrep
from pipeline.fetch.tls import client_context
from pipeline.uid import normalise_url

log = logging.getLogger(__name__)

_REDIRECTS = (301, 302, 303, 307, 308)
_RETRYABLE_STATUS = (429, 500, 502, 503, 504)
_REFUSED_CONTENT_TYPES = (
    "text/",
    "application/json",
    "application/xml",
    "application/xhtml",
    "application/javascript",
    "image/svg",
)
_TDMREP_CAP = 1024 * 1024  # bytes of a tdmrep.json; a larger one is ignored
_MAX_PACES = 100_000  # hosts whose pacing a process keeps
Reader = Callable[[str, Response], Awaitable[Any]]


@dataclass(frozen=True)
class FetchResult:
    """Body of a successful fetch and where it finally came from."""

    body: bytes
    status: int
    final_url: str
    content_type: str | None


@dataclass
class FetcherState:
    """What an executor process keeps between its tasks: robots.txt and tdmrep.json rules per
    origin, the block lists, the hosts' shares of the job's budget and each host's pacing."""

    site_rules: SiteRulesCache
    blocklist: BlockList = field(default_factory=BlockList)
    shares: HostShares = field(default_factory=HostShares)
    paces: dict[str, HostPace] = field(default_factory=dict)

    def pace(self, host: str, interval: float) -> HostPace:
        """The pacing of ``host``, set to this task's configured ``interval``."""
        pace = self.paces.get(host)
        if pace is None:
            if len(self.paces) >= _MAX_PACES:
                for stale in list(self.paces)[: _MAX_PACES // 2]:  # the oldest half: bounded memory
                    del self.paces[stale]
            pace = self.paces[host] = HostPace(interval)
        else:
            pace.configure(interval)
        return pace

    @classmethod
    def build(cls, options: FetchOptions, shares: HostShares | None = None) -> FetcherState:
        """A fresh state for ``options`` (reads the ``--block-list`` files)."""
        opt_outs = options.opt_outs
        blocklist = BlockList.load(opt_outs.block_lists, opt_outs.block_phash_distance)
        if blocklist:
            log.info("block lists: %s entries", blocklist.counts())
        return cls(SiteRulesCache(opt_outs.robots_ttl), blocklist, shares or HostShares())


class _RulesNeeded(Exception):
    """A redirect reached an origin whose site rules are not loaded: load them, resume from ``url``."""

    def __init__(self, url: str, target: Target, hop: int) -> None:
        super().__init__(url)
        self.url = url
        self.target = target
        self.hop = hop


class Fetcher:
    """Fetches image bytes; use as ``async with Fetcher(options) as f: await f.fetch(url)``."""

    def __init__(
        self,
        options: FetchOptions,
        getaddrinfo: GetAddrInfo | None = None,
        environ: Mapping[str, str] | None = None,
        state: FetcherState | None = None,
        own_hosts: Iterable[str] = (),
    ) -> None:
        """``environ`` (default: this process's environment) is where proxy variables are read;
        ``state`` is kept by the caller between tasks (default: a fresh one); ``own_hosts`` are the
        hosts of this task's rows (for their shares of the job's per-host budget)."""
        self.options = options
        self.state = state if state is not None else FetcherState.build(options)
        opt_outs, politeness = options.opt_outs, options.politeness
        self._rules = self.state.site_rules
        self._rules_on = opt_outs.robots_txt or opt_outs.tdmrep == "file"
        self._tdm_header = opt_outs.tdmrep != "off"
        self._blocks = self.state.blocklist
        self._check_urls = self._blocks.checks_urls
        self._adaptive = politeness.adaptive_backoff
        self._share = self.state.shares.for_task(own_hosts)
        self._gates: dict[str, HostGate] = {}
        self._loading: dict[OriginKey, asyncio.Future[SiteRules]] = {}
        self.policy = AddressPolicy.from_strings(options.allow_networks)
        # Once per fetcher, not per request: a run without a proxy pays nothing for the feature.
        self.proxies = ProxySettings.resolve(options.proxy, os.environ if environ is None else environ)
        self._resolver = PolicyResolver(self.policy, options.dns_ttl, getaddrinfo=getaddrinfo)
        self._pool: ConnectionPool | None = None
        self._slots = asyncio.Semaphore(options.concurrency)  # requests in flight, all hosts
        # No cookies, no Referer, nothing else: unrelated image URLs must not share state.
        self._headers = (
            ("User-Agent", options.user_agent),
            ("Accept", "image/*,*/*;q=0.8"),
            ("Accept-Encoding", "identity"),
        )
        self._file_headers = (
            ("User-Agent", options.user_agent),
            ("Accept", "text/plain,application/json,*/*;q=0.8"),
            ("Accept-Encoding", "identity"),
        )

    async def __aenter__(self) -> Fetcher:
        opts = self.options
        self._pool = ConnectionPool(
            self._resolve,
            opts.connect_timeout,
            opts.concurrency,
            tls=functools.partial(client_context, opts.ca_bundle, opts.ignore_ssl_certificate),
            proxies=self.proxies,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        for loading in list(self._loading.values()):
            loading.cancel()
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    async def fetch(self, url: str) -> FetchResult:
        """Fetch ``url`` (already normalised), raising ``SampleError`` with the failure class."""
        target = self._target(url)  # the first hop's checks do not change between attempts
        if self._check_urls:
            self._blocks.check_url(url, target.host)
        if self._rules_on:
            rules = self._rules.get((target.scheme, target.host, target.port))
            if rules is None:
                rules = await self._load_rules(target)
            rules.check(target.path)
        return await self._with_retries(url, target, self._read, self._headers, True)

    def check_content(self, sha256: str, phash: int) -> None:
        """Raise ``SampleError`` when a downloaded image's sha256 or pHash is on a block list."""
        if self._blocks.checks_content:
            self._blocks.check_content(sha256, phash)

    async def _with_retries(
        self, url: str, target: Target, reader: Reader, headers: Sequence[tuple[str, str]], checked: bool
    ) -> Any:
        """``reader``'s result for ``url``, redirects followed, retryable failures retried.

        ``checked``: redirect hops pass the block lists and their origin's site rules (image
        requests; not the requests for those rules themselves).
        """
        opts = self.options
        attempt = 0
        hop = 0
        while True:
            try:
                # Waiting for a free slot to the host does not count against the deadline, so a
                # host with many queued URLs does not turn into spurious timeouts.
                async with self._gate(target.host) as gate:
                    crowded = self._slots.locked()
                    async with self._slots:
                        if crowded:
                            # It waited for a task-wide slot after its turn: another turn, so that
                            # requests held back together do not go out together.
                            await gate.wait_turn()
                        async with asyncio.timeout(opts.total_timeout):
                            return await self._attempt(url, target, reader, headers, checked, hop, gate)
            except _RulesNeeded as need:
                # Outside every slot: the rules' own requests need them.
                (await self._load_rules(need.target)).check(need.target.path)
                url, target, hop = need.url, need.target, need.hop
                continue  # not a new attempt: resume at the hop that needed them
            except TimeoutError:
                error: SampleError = Retryable(
                    ErrorClass.TIMEOUT, f"no complete response within {opts.total_timeout:g}s"
                )
            except Retryable as exc:
                error = exc
            if attempt >= opts.retries:
                raise SampleError(error.error_class, error.message, error.http_status)
            wait = opts.backoff_base * (2**attempt) * (0.5 + random.random())
            server_wait = getattr(error, "wait", None)
            if server_wait is not None:
                if server_wait > opts.max_retry_wait:
                    raise SampleError(
                        error.error_class,
                        f"{error.message}; Retry-After {server_wait:g}s exceeds --max-retry-wait",
                        error.http_status,
                    )
                wait = max(wait, server_wait)
            attempt += 1
            await asyncio.sleep(wait)

    def _gate(self, host: str) -> HostGate:
        gate = self._gates.get(host)
        if gate is None:
            politeness = self.options.politeness
            cap, interval = task_limits(
                self._share(host),
                self.options.per_host_concurrency,
                politeness.host_concurrency,
                politeness.per_host_rps,
            )
            gate = self._gates[host] = HostGate(cap, self.state.pace(host, interval))
        return gate

    def _answered(self, host: str, response: Response) -> None:
        """Adaptive backoff: a 429 slows the host down (or pauses it for its Retry-After)."""
        if response.status == 429:
            gate = self._gate(host)
            wait = _retry_after(response.headers.get("Retry-After"))
            if wait is None:
                gate.throttled(self.options.backoff_base)
            else:
                gate.pause(min(wait, self.options.max_retry_wait))
            return
        gate = self._gates.get(host)
        if gate is not None and gate.interval > gate.floor:
            gate.answered()

    async def _attempt(
        self,
        url: str,
        target: Target,
        reader: Reader,
        headers: Sequence[tuple[str, str]],
        checked: bool,
        first_hop: int,
        gate: HostGate,
    ) -> Any:
        if self._pool is None:
            raise RuntimeError("Fetcher used outside 'async with'")
        current = url
        gate_host = target.host
        for hop in range(first_hop, self.options.max_redirects + 1):
            if hop > first_hop:
                target = self._target(current)
                if self._check_urls:  # a blocked host is never contacted, not even for robots.txt
                    self._blocks.check_url(current, target.host)
                if checked and self._rules_on:
                    self._check_hop_rules(current, target, hop)
            connection = await self._pool.acquire(target)
            try:
                if gate.pace.interval > 0 and target.host == gate_host:
                    await gate.claim()  # the request goes out right after this, without an await
                response = await request(connection, target, headers)
                if self._adaptive:
                    self._answered(target.host, response)
                if response.status in _REDIRECTS:
                    current = self._redirect_target(current, response)
                    continue
                return await reader(current, response)
            except (ConnectionResetError, BrokenPipeError) as exc:
                raise Retryable(ErrorClass.CONNECTION_RESET, f"connection reset by {target.host}") from exc
            except OSError as exc:
                raise SampleError(
                    ErrorClass.CONNECT_ERROR, f"network error with {target.host}: {exc}"
                ) from exc
            finally:
                self._pool.release(connection)  # kept for reuse only after a complete response
        raise SampleError(
            ErrorClass.TOO_MANY_REDIRECTS, f"more than {self.options.max_redirects} redirects from {url}"
        )

    def _check_hop_rules(self, url: str, target: Target, hop: int) -> None:
        """A redirect target passes its origin's rules (when loaded: else raise
        :class:`_RulesNeeded` to load them outside the slots)."""
        rules = self._rules.get((target.scheme, target.host, target.port))
        if rules is None:
            raise _RulesNeeded(url, target, hop)
        rules.check(target.path)

    async def _load_rules(self, target: Target) -> SiteRules:
        """The site rules of ``target``'s origin: cached, being fetched (wait for that), or fetched."""
        key = (target.scheme, target.host, target.port)
        cached = self._rules.get(key)
        if cached is not None:
            return cached
        loading = self._loading.get(key)
        if loading is None:
            loading = asyncio.ensure_future(self._fetch_rules(key, target))
            self._loading[key] = loading
            loading.add_done_callback(lambda _, key=key: self._loading.pop(key, None))
        # Shielded: one waiter giving up does not cancel the fetch the others wait for.
        return await asyncio.shield(loading)

    async def _fetch_rules(self, key: OriginKey, target: Target) -> SiteRules:
        opt_outs = self.options.opt_outs
        origin = f"{target.scheme}://{target.host_header}"
        robots, failure = ALLOW_ALL, None
        if opt_outs.robots_txt:
            outcome = await self._site_file(target, ROBOTS_PATH, PARSE_LIMIT, truncate=True)
            if isinstance(outcome, SampleError):
                parsed = robots_from_error(outcome)
            else:
                parsed = robots_from_response(*outcome)
            if isinstance(parsed, tuple):
                failure = failure_of(origin, parsed)
            else:
                robots = parsed
        tdm = NO_TDMREP
        if opt_outs.tdmrep == "file" and failure is None:
            outcome = await self._site_file(target, WELL_KNOWN_PATH, _TDMREP_CAP, truncate=False)
            if not isinstance(outcome, SampleError) and 200 <= outcome[0] < 300:
                tdm = parse_tdmrep(outcome[1], origin)
        rules = SiteRules(origin, robots, tdm, failure)
        self._rules.put(key, rules)
        return rules

    async def _site_file(
        self, target: Target, path: str, cap: int, truncate: bool
    ) -> tuple[int, bytes] | SampleError:
        """(status, body) of ``path`` on ``target``'s origin, or the failure, through the usual
        machinery: address policy, proxy, TLS, redirects, retries and the host's gate."""
        url = f"{target.scheme}://{target.host_header}{path}"

        async def read(current: str, response: Response) -> tuple[int, bytes]:
            if response.status in _RETRYABLE_STATUS:
                raise Retryable(
                    ErrorClass.HTTP_ERROR,
                    f"HTTP {response.status}",
                    response.status,
                    _retry_after(response.headers.get("Retry-After")),
                )
            return response.status, await response.read(cap, truncate)

        file_target = Target(target.scheme, target.host, target.port, path)
        try:
            result: tuple[int, bytes] = await self._with_retries(
                url, file_target, read, self._file_headers, False
            )
        except SampleError as exc:
            return exc
        return result

    def _target(self, url: str) -> Target:
        """Where ``url`` goes, after the checks that need no DNS (an IP literal host is checked here)."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise SampleError(ErrorClass.INVALID_URL, f"invalid URL {url[:200]!r}: {exc}") from exc
        host = parts.hostname or ""
        if not host:
            raise SampleError(ErrorClass.INVALID_URL, f"URL has no host: {url[:200]!r}")
        self.policy.check_host_literal(host)
        return parse_target(parts.scheme, host, port, parts.path, parts.query)

    async def _resolve(self, host: str, port: int) -> list[tuple[int, str]]:
        """Checked ``(family, address)`` pairs to connect to: the literal itself, or DNS answers."""
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return await self._resolver.resolve(host, port)
        self.policy.check_address(host, host)
        return [(socket.AF_INET6 if ip.version == 6 else socket.AF_INET, host)]

    def _redirect_target(self, current: str, response: Response) -> str:
        location = response.headers.get("Location")
        if not location:
            raise SampleError(ErrorClass.HTTP_ERROR, "redirect without Location", response.status)
        return normalise_url(urljoin(current, location))

    async def _read(self, url: str, response: Response) -> FetchResult:
        status = response.status
        if status in _RETRYABLE_STATUS:
            raise Retryable(
                ErrorClass.HTTP_ERROR,
                f"HTTP {status}",
                status,
                _retry_after(response.headers.get("Retry-After")),
            )
        if status != 200:
            raise SampleError(ErrorClass.HTTP_ERROR, f"HTTP {status}", status)
        directive = is_opted_out(
            response.headers.getall("X-Robots-Tag"),
            "corpusforge",
            self.options.disallowed_header_directives,
        )
        if directive:
            raise SampleError(ErrorClass.OPTED_OUT, f"X-Robots-Tag: {directive}", status)
        if self._tdm_header and header_reservation(response.headers.get("tdm-reservation")):
            policy = response.headers.get("tdm-policy")
            raise SampleError(
                ErrorClass.TDM_RESERVED,
                "tdm-reservation: 1 header" + (f" (tdm-policy: {policy[:200]})" if policy else ""),
                status,
            )
        content_type = response.headers.get("Content-Type")
        if content_type and content_type.strip().lower().startswith(_REFUSED_CONTENT_TYPES):
            raise SampleError(
                ErrorClass.BAD_CONTENT_TYPE, f"Content-Type {content_type!r} is not an image", status
            )
        return FetchResult(await response.read(self.options.max_bytes), status, url, content_type)


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
