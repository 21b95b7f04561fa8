"""Asynchronous image fetcher: one pooled aiohttp session per task, every request bounded.

Each request gets a connect timeout, a total deadline and a byte cap. Redirects are followed by
hand so every hop's URL and address pass the same checks as the first. Only retryable failures
(timeouts, resets, 429 and 5xx) are retried, with exponential backoff or the server's Retry-After.
"""

from __future__ import annotations

import asyncio
import email.utils
import errno
import logging
import random
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import aiohttp

from pipeline.errors import ErrorClass, SampleError
from pipeline.fetch.address_policy import AddressPolicy
from pipeline.fetch.options import FetchOptions
from pipeline.fetch.resolver import GetAddrInfo, PolicyResolver
from pipeline.fetch.robots import is_opted_out
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
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class FetchResult:
    """Body of a successful fetch and where it finally came from."""

    body: bytes
    status: int
    final_url: str
    content_type: str | None


class _Retryable(SampleError):
    """A failure worth another attempt; ``wait`` is the server's Retry-After, if any."""

    def __init__(
        self, error_class: ErrorClass, message: str, http_status: int | None = None, wait: float | None = None
    ) -> None:
        super().__init__(error_class, message, http_status)
        self.wait = wait


class Fetcher:
    """Fetches image bytes; use as ``async with Fetcher(options) as f: await f.fetch(url)``."""

    def __init__(self, options: FetchOptions, getaddrinfo: GetAddrInfo | None = None) -> None:
        self.options = options
        self.policy = AddressPolicy.from_strings(options.allow_networks)
        self._getaddrinfo = getaddrinfo
        self._session: aiohttp.ClientSession | None = None
        self._host_slots: dict[tuple[str, str, int | None], asyncio.Semaphore] = {}

    async def __aenter__(self) -> Fetcher:
        opts = self.options
        connector = aiohttp.TCPConnector(
            limit=opts.concurrency,
            limit_per_host=opts.per_host_concurrency,
            resolver=PolicyResolver(self.policy, opts.dns_ttl, getaddrinfo=self._getaddrinfo),
            use_dns_cache=False,  # PolicyResolver caches, and must see every lookup
            enable_cleanup_closed=True,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers={
                "User-Agent": opts.user_agent,
                "Accept": "image/*,*/*;q=0.8",
                "Accept-Encoding": "identity",
            },
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=opts.connect_timeout),
            trust_env=False,
            # Unrelated image URLs must not share state: no cookie is stored or sent.
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=True,
            max_line_size=16 * 1024,
            max_field_size=16 * 1024,
        )
        # aiohttp silently resends a request once when the server drops the connection; our
        # own retry policy must be the only one, so attempts seen by servers match --retries.
        if hasattr(self._session, "_retry_connection"):
            self._session._retry_connection = False
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetch(self, url: str) -> FetchResult:
        """Fetch ``url`` (already normalised), raising ``SampleError`` with the failure class."""
        opts = self.options
        attempt = 0
        while True:
            try:
                # Waiting for a free slot to the host does not count against the deadline, so a
                # host with many queued URLs does not turn into spurious timeouts.
                async with self._host_slot(url), asyncio.timeout(opts.total_timeout):
                    return await self._attempt(url)
            except TimeoutError:
                error: SampleError = _Retryable(
                    ErrorClass.TIMEOUT, f"no complete response within {opts.total_timeout:g}s"
                )
            except _Retryable as exc:
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

    def _host_slot(self, url: str) -> asyncio.Semaphore:
        parts = urlsplit(url)
        key = (parts.scheme, parts.hostname or "", parts.port)
        slot = self._host_slots.get(key)
        if slot is None:
            slot = self._host_slots[key] = asyncio.Semaphore(self.options.per_host_concurrency)
        return slot

    async def _attempt(self, url: str) -> FetchResult:
        assert self._session is not None, "Fetcher used outside 'async with'"
        current = url
        for _hop in range(self.options.max_redirects + 1):
            host = urlsplit(current).hostname or ""
            self.policy.check_host_literal(host)
            try:
                async with self._session.get(current, allow_redirects=False) as response:
                    if response.status in _REDIRECTS:
                        current = self._redirect_target(current, response)
                        continue
                    return await self._read(current, response)
            except SampleError:
                raise
            except aiohttp.ServerTimeoutError as exc:  # connect or read timeout inside aiohttp
                raise _Retryable(ErrorClass.TIMEOUT, f"timed out talking to {host}: {exc}") from exc
            except aiohttp.ClientConnectorDNSError as exc:
                raise SampleError(ErrorClass.DNS_ERROR, f"cannot resolve {host}: {exc.os_error}") from exc
            except aiohttp.ClientConnectorError as exc:
                raise SampleError(
                    ErrorClass.CONNECT_ERROR, f"cannot connect to {host}: {exc.os_error}"
                ) from exc
            except aiohttp.ClientPayloadError as exc:
                raise SampleError(ErrorClass.TRUNCATED, f"body ended early: {exc}") from exc
            except (aiohttp.ServerDisconnectedError, ConnectionResetError) as exc:
                raise _Retryable(ErrorClass.CONNECTION_RESET, f"connection closed by {host}: {exc}") from exc
            except aiohttp.ClientOSError as exc:
                if exc.errno in (errno.ECONNRESET, errno.EPIPE):
                    raise _Retryable(ErrorClass.CONNECTION_RESET, f"connection reset by {host}") from exc
                raise SampleError(ErrorClass.CONNECT_ERROR, f"network error with {host}: {exc}") from exc
            except aiohttp.ClientResponseError as exc:
                raise SampleError(ErrorClass.PROTOCOL_ERROR, f"invalid HTTP response: {exc.message}") from exc
            except aiohttp.InvalidURL as exc:
                raise SampleError(ErrorClass.INVALID_URL, f"invalid URL {current!r}: {exc}") from exc
            except aiohttp.ClientError as exc:
                raise SampleError(ErrorClass.PROTOCOL_ERROR, f"HTTP error: {exc!r}") from exc
        raise SampleError(
            ErrorClass.TOO_MANY_REDIRECTS, f"more than {self.options.max_redirects} redirects from {url}"
        )

    def _redirect_target(self, current: str, response: aiohttp.ClientResponse) -> str:
        location = response.headers.get("Location")
        if not location:
            raise SampleError(ErrorClass.HTTP_ERROR, "redirect without Location", response.status)
        return normalise_url(urljoin(current, location))

    async def _read(self, url: str, response: aiohttp.ClientResponse) -> FetchResult:
        status = response.status
        if status in _RETRYABLE_STATUS:
            raise _Retryable(
                ErrorClass.HTTP_ERROR,
                f"HTTP {status}",
                status,
                _retry_after(response.headers.get("Retry-After")),
            )
        if status != 200:
            raise SampleError(ErrorClass.HTTP_ERROR, f"HTTP {status}", status)
        directive = is_opted_out(
            response.headers.getall("X-Robots-Tag", []),
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
        cap = self.options.max_bytes
        if response.content_length is not None and response.content_length > cap:
            raise SampleError(
                ErrorClass.TOO_LARGE,
                f"Content-Length {response.content_length} exceeds --max-bytes {cap}",
                status,
            )
        if _plain_length(response):
            # The parser stops a plain body at Content-Length, which is under the cap: one read
            # instead of a loop of chunks.
            return FetchResult(await response.read(), status, url, content_type)
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(_CHUNK):
            size += len(chunk)
            if size > cap:
                raise SampleError(ErrorClass.TOO_LARGE, f"body exceeds --max-bytes {cap}", status)
            chunks.append(chunk)
        return FetchResult(b"".join(chunks), status, url, content_type)


def _plain_length(response: aiohttp.ClientResponse) -> bool:
    """True when the body is exactly Content-Length bytes as sent: not chunked, not compressed.

    A compressed body can inflate far past its Content-Length, and a chunked one is not bounded
    by it, so those are read chunk by chunk against the cap instead.
    """
    headers = response.headers
    return (
        response.content_length is not None
        and "Content-Encoding" not in headers
        and "Transfer-Encoding" not in headers
    )


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
