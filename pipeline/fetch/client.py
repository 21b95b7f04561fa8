"""Asynchronous image fetcher: one connection pool per task, every request bounded.

Each request gets a connect timeout, a total deadline and a byte cap. Redirects are followed by
hand so every hop's URL and address pass the same checks as the first. Only retryable failures
(timeouts, resets, 429 and 5xx) are retried, with exponential backoff or the server's Retry-After.
The HTTP/1.1 transport is :mod:`pipeline.fetch.http11`.
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
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from pipeline.errors import ErrorClass, SampleError
from pipeline.fetch.address_policy import AddressPolicy
from pipeline.fetch.http11 import ConnectionPool, Response, Retryable, Target, parse_target, request
from pipeline.fetch.options import FetchOptions
from pipeline.fetch.proxy import ProxySettings
from pipeline.fetch.resolver import GetAddrInfo, PolicyResolver
from pipeline.fetch.robots import is_opted_out
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


@dataclass(frozen=True)
class FetchResult:
    """Body of a successful fetch and where it finally came from."""

    body: bytes
    status: int
    final_url: str
    content_type: str | None


class Fetcher:
    """Fetches image bytes; use as ``async with Fetcher(options) as f: await f.fetch(url)``."""

    def __init__(
        self,
        options: FetchOptions,
        getaddrinfo: GetAddrInfo | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """``environ`` (default: this process's environment) is where proxy variables are read."""
        self.options = options
        self.policy = AddressPolicy.from_strings(options.allow_networks)
        # Once per fetcher, not per request: a run without a proxy pays nothing for the feature.
        self.proxies = ProxySettings.resolve(options.proxy, os.environ if environ is None else environ)
        self._resolver = PolicyResolver(self.policy, options.dns_ttl, getaddrinfo=getaddrinfo)
        self._pool: ConnectionPool | None = None
        self._slots = asyncio.Semaphore(options.concurrency)  # requests in flight, all hosts
        self._host_slots: dict[tuple[str, str, int], asyncio.Semaphore] = {}
        # No cookies, no Referer, nothing else: unrelated image URLs must not share state.
        self._headers = (
            ("User-Agent", options.user_agent),
            ("Accept", "image/*,*/*;q=0.8"),
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
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    async def fetch(self, url: str) -> FetchResult:
        """Fetch ``url`` (already normalised), raising ``SampleError`` with the failure class."""
        opts = self.options
        target = self._target(url)  # the first hop's checks do not change between attempts
        attempt = 0
        while True:
            try:
                # Waiting for a free slot to the host does not count against the deadline, so a
                # host with many queued URLs does not turn into spurious timeouts.
                async with self._host_slot(target), self._slots, asyncio.timeout(opts.total_timeout):
                    return await self._attempt(url, target)
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

    def _host_slot(self, target: Target) -> asyncio.Semaphore:
        key = (target.scheme, target.host, target.port)
        slot = self._host_slots.get(key)
        if slot is None:
            slot = self._host_slots[key] = asyncio.Semaphore(self.options.per_host_concurrency)
        return slot

    async def _attempt(self, url: str, target: Target) -> FetchResult:
        if self._pool is None:
            raise RuntimeError("Fetcher used outside 'async with'")
        current = url
        for hop in range(self.options.max_redirects + 1):
            if hop:
                target = self._target(current)
            connection = await self._pool.acquire(target)
            try:
                response = await request(connection, target, self._headers)
                if response.status in _REDIRECTS:
                    current = self._redirect_target(current, response)
                    continue
                return await self._read(current, response)
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
