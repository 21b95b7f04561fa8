"""A lean HTTP/1.1 client for GET requests: pooled keep-alive connections and a bounded parser.

Why not aiohttp: a download task spends most of its CPU on images, and with aiohttp's request
and response machinery (URL objects, header multidicts, tracing hooks, stream readers) the rest
of a task cost 0.93-1.04 CPU-ms an image; with this client it costs 0.46-0.67 ms (a bare asyncio
protocol that checks nothing: 0.38-0.44; docs/benchmarks.md, "Download"). It does only what an
image crawler needs, on plain asyncio protocols:

- ``GET`` over HTTP/1.1 (HTTP/1.0 answers accepted), http and https, keep-alive reuse per
  (scheme, host, port), at most ``max_idle`` idle connections kept;
- https: the certificate verified by the pool's TLS context (``pipeline.fetch.tls``), SNI for
  names; the handshake has its own ``connect_timeout``, and every failure of it (a refused
  certificate, a stall, a peer that hangs up) is ``TLS_ERROR`` naming the host and the reason;
- connections go to the addresses the pool's ``resolve`` callable returned after checking them, so the
  address that was checked is the one used;
- through a proxy (``pipeline.fetch.proxy``), the target is resolved and checked all the same
  before anything is sent to the proxy; an http target is asked for in absolute form on a
  connection to the proxy, an https target through a ``CONNECT`` tunnel with TLS to the target
  inside it; a proxy that cannot be reached or refuses is ``PROXY_ERROR`` naming the proxy;
- bodies framed by Content-Length, chunked encoding or connection close, each held to a byte
  cap while it arrives; ``gzip``/``deflate`` content codings (also stacked) decoded under the
  same cap; any other coding (``br``, ``zstd``) refused, since nothing here can bound it;
- status line and headers bounded in size and number, malformed ones refused;
- every failure raised as a :class:`SampleError` with its class; the ones worth another attempt
  (resets, connect timeouts) as :class:`Retryable`.

Deadlines are the caller's (``asyncio.timeout`` around a whole request): cancelling a request
closes its connection, so no half-read response is ever reused.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from pipeline.errors import ErrorClass, SampleError
from pipeline.fetch.proxy import Proxy, ProxySettings
from pipeline.fetch.tls import handshake_error

MAX_HEAD_BYTES = 64 * 1024  # status line and all header lines together
MAX_LINE_BYTES = 16 * 1024  # any one of them
MAX_HEADERS = 256
MAX_CODINGS = 4
_READ_AHEAD = 256 * 1024  # bytes buffered past what the reader waits for before reading pauses
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Characters kept as they are in a request target; anything else (non-ASCII) is percent-encoded.
_TARGET_SAFE = "/?#[]@!$&'()*+,;=:-._~%"


class Retryable(SampleError):
    """A failure worth another attempt; ``wait`` is the server's Retry-After, if any."""

    def __init__(
        self, error_class: ErrorClass, message: str, http_status: int | None = None, wait: float | None = None
    ) -> None:
        super().__init__(error_class, message, http_status)
        self.wait = wait


@dataclass(frozen=True)
class Target:
    """Where a request goes: scheme, host (ASCII, no brackets), port and the request target."""

    scheme: str
    host: str
    port: int
    path: str  # path and query as sent on the request line

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == _DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    @property
    def authority(self) -> str:
        """``host:port`` (the port always given), as a ``CONNECT`` request names its target."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_target(scheme: str, host: str, port: int | None, path: str, query: str) -> Target:
    """A :class:`Target` from URL parts; non-ASCII hosts go through IDNA, paths are percent-encoded."""
    if scheme not in _DEFAULT_PORTS:
        raise SampleError(ErrorClass.UNSUPPORTED_SCHEME, f"only http and https are fetched, not {scheme!r}")
    try:
        ascii_host = host if host.isascii() else host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise SampleError(ErrorClass.INVALID_URL, f"host {host!r} is not a valid name: {exc}") from exc
    target = quote(path or "/", safe=_TARGET_SAFE)
    if query:
        target += "?" + quote(query, safe=_TARGET_SAFE)
    if any(c in target for c in " \r\n\t\x00\x7f"):
        raise SampleError(ErrorClass.INVALID_URL, f"request target contains white space: {target[:200]!r}")
    return Target(scheme, ascii_host.lower(), port or _DEFAULT_PORTS[scheme], target)


class Headers:
    """Response header fields, looked up without regard to case; repeated fields kept in order."""

    __slots__ = ("_fields",)

    def __init__(self, fields: list[tuple[str, str]]) -> None:
        self._fields = fields  # (lower-case name, value)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name``, or ``default``."""
        name = name.lower()
        for key, value in self._fields:
            if key == name:
                return value
        return default

    def getall(self, name: str) -> list[str]:
        """Every value of ``name`` in the order received ([] when absent)."""
        name = name.lower()
        return [value for key, value in self._fields if key == name]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None


class _Stream(asyncio.Protocol):
    """One TCP (or TLS) connection: received bytes in a buffer, and a way to wait for more."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.closed = False  # end of stream, or the connection is gone
        self.tls = False
        self._want = 0
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        size = len(self.buffer)
        if size >= self._want:
            self._wake()
        if size > self._want + _READ_AHEAD and not self._paused and self.transport is not None:
            self.transport.pause_reading()  # the reader is behind: let TCP flow control hold the rest
            self._paused = True

    def eof_received(self) -> bool:
        self.closed = True
        self._wake()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def wait_for(self, size: int) -> None:
        """Wait until the buffer holds ``size`` bytes or the stream ends, whichever comes first."""
        while len(self.buffer) < size and not self.closed:
            self._want = size
            if self._paused and self.transport is not None:
                self._paused = False
                self.transport.resume_reading()
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        self._want = 0

    async def read_until(self, delimiter: bytes, limit: int, too_long: str) -> bytes | None:
        """Remove and return the bytes before ``delimiter`` (and the delimiter itself).

        ``SampleError(PROTOCOL_ERROR, too_long)`` once more than ``limit`` bytes come without it;
        None when the stream ends first (the buffer keeps what did arrive).
        """
        searched = 0
        while True:
            end = self.buffer.find(delimiter, max(0, searched - len(delimiter) + 1))
            if end > limit or (end < 0 and len(self.buffer) > limit):
                raise SampleError(ErrorClass.PROTOCOL_ERROR, too_long)
            if end >= 0:
                return self.take(end + len(delimiter))[:end]
            if self.closed:
                return None
            searched = len(self.buffer)
            await self.wait_for(searched + 1)

    def take(self, size: int) -> bytes:
        """Remove and return the first ``size`` bytes of the buffer."""
        data = bytes(self.buffer[:size]) if size < len(self.buffer) else bytes(self.buffer)
        del self.buffer[:size]
        return data

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            if self.tls:
                # No TLS shutdown (close_notify, then waiting for the peer's): HTTP framing says
                # where a body ends, and a graceful close would outlive the event loop.
                self.transport.abort()
            else:
                self.transport.close()


class Connection:
    """A connection to one (scheme, host, port), reusable for another request when ``reusable``."""

    def __init__(self, key: tuple[str, str, int], stream: _Stream, forward: Proxy | None = None) -> None:
        self.key = key
        self.stream = stream
        self.reusable = False
        self.forward = forward  # the proxy an http request is sent to in absolute form, if any

    def send(self, data: bytes) -> None:
        if self.stream.closed or self.stream.transport is None:
            raise Retryable(ErrorClass.CONNECTION_RESET, f"connection to {self.key[1]} closed")
        self.stream.transport.write(data)

    @property
    def alive(self) -> bool:
        transport = self.stream.transport
        return (
            not self.stream.closed
            and transport is not None
            and not transport.is_closing()
            and not self.stream.buffer
        )

    def close(self) -> None:
        self.reusable = False
        self.stream.close()


Resolve = Callable[[str, int], Awaitable[Sequence[tuple[int, str]]]]


class ConnectionPool:
    """Opens connections (through ``resolve``, which returns checked ``(family, address)`` pairs)
    and keeps idle keep-alive ones for reuse.

    ``tls`` builds the TLS context on the first https connection; ``proxies`` (None: every
    connection is direct) says which targets go through which proxy.
    """

    def __init__(
        self,
        resolve: Resolve,
        connect_timeout: float,
        max_idle: int,
        tls: Callable[[], ssl.SSLContext] = ssl.create_default_context,
        proxies: ProxySettings | None = None,
    ) -> None:
        self._resolve = resolve
        self._connect_timeout = connect_timeout
        self._max_idle = max_idle
        self._idle: dict[tuple[str, str, int], list[Connection]] = {}
        self._idle_count = 0
        self._tls = tls
        self._ssl: ssl.SSLContext | None = None
        self._proxies = proxies
        self._proxy_addresses: dict[tuple[str, int], list[tuple[int, str]]] = {}

    async def acquire(self, target: Target) -> Connection:
        """An idle connection to ``target``'s origin, or a new one."""
        key = (target.scheme, target.host, target.port)
        idle = self._idle.get(key)
        while idle:
            connection = idle.pop()
            self._idle_count -= 1
            if connection.alive:
                return connection
            connection.close()
        return await self._open(key, target)

    def release(self, connection: Connection) -> None:
        """Keep ``connection`` for reuse if its last response allows it, else close it."""
        if not connection.reusable or not connection.alive:
            connection.close()
            return
        connection.reusable = False
        if self._idle_count >= self._max_idle:
            self._evict_one()
        self._idle.setdefault(connection.key, []).append(connection)
        self._idle_count += 1

    def close(self) -> None:
        """Close every idle connection."""
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()
        self._idle_count = 0

    def _evict_one(self) -> None:
        for key, connections in self._idle.items():
            if connections:
                connections.pop(0).close()
                self._idle_count -= 1
                if not connections:
                    del self._idle[key]
                return

    async def _open(self, key: tuple[str, str, int], target: Target) -> Connection:
        # The target's addresses are checked whether or not a proxy will connect to it.
        addresses = await self._resolve(target.host, target.port)
        proxy = self._proxies.proxy_for(target.scheme, target.host, target.port) if self._proxies else None
        if proxy is None:
            try:
                stream = await self._tcp(addresses, target.port)
            except TimeoutError as exc:
                raise Retryable(
                    ErrorClass.TIMEOUT, f"no connection to {target.host} within {self._connect_timeout:g}s"
                ) from exc
            except OSError as exc:
                raise SampleError(
                    ErrorClass.CONNECT_ERROR, f"cannot connect to {target.host}: {exc}"
                ) from exc
            connection = Connection(key, stream)
        else:
            stream = await self._connect_proxy(proxy)
            connection = Connection(key, stream, None if target.scheme == "https" else proxy)
        if target.scheme == "https":
            try:
                if proxy is not None:
                    await self._tunnel(stream, proxy, target)
                await self._start_tls(stream, target)
            except BaseException:
                stream.close()
                raise
        return connection

    async def _tcp(self, addresses: Sequence[tuple[int, str]], port: int) -> _Stream:
        """A TCP connection to the first of ``addresses`` that answers; TimeoutError or the last
        OSError when none does."""
        loop = asyncio.get_running_loop()
        last: OSError | None = None
        for family, address in addresses:
            try:
                async with asyncio.timeout(self._connect_timeout):
                    _, stream = await loop.create_connection(_Stream, address, port, family=family)
            except TimeoutError:
                raise
            except OSError as exc:
                last = exc
                continue
            sock = stream.transport.get_extra_info("socket") if stream.transport else None
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return stream
        raise last or OSError("no address to connect to")

    async def _connect_proxy(self, proxy: Proxy) -> _Stream:
        """A TCP connection to ``proxy`` (an address the operator chose: not held to the policy)."""
        try:
            addresses = self._proxy_addresses.get((proxy.host, proxy.port))
            if addresses is None:
                addresses = await _lookup(proxy.host, proxy.port)
                self._proxy_addresses[(proxy.host, proxy.port)] = addresses
            return await self._tcp(addresses, proxy.port)
        except TimeoutError as exc:
            raise Retryable(
                ErrorClass.PROXY_ERROR,
                f"no connection to proxy {proxy.display} within {self._connect_timeout:g}s",
            ) from exc
        except OSError as exc:
            raise SampleError(
                ErrorClass.PROXY_ERROR, f"cannot connect to proxy {proxy.display}: {exc}"
            ) from exc

    async def _tunnel(self, stream: _Stream, proxy: Proxy, target: Target) -> None:
        """Ask ``proxy`` for a tunnel to ``target`` (``CONNECT``); return once it is open."""
        lines = [f"CONNECT {target.authority} HTTP/1.1", f"Host: {target.authority}"]
        if proxy.authorization:
            lines.append(f"Proxy-Authorization: {proxy.authorization}")
        what = f"proxy {proxy.display}"
        try:
            if stream.transport is None:
                raise ConnectionResetError("not connected")
            stream.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            async with asyncio.timeout(self._connect_timeout):
                status = 100
                while 100 <= status < 200:
                    status, _, _ = await _read_head(stream, what)
        except TimeoutError as exc:
            raise Retryable(
                ErrorClass.PROXY_ERROR,
                f"{what} did not answer CONNECT {target.authority} within {self._connect_timeout:g}s",
            ) from exc
        except (SampleError, OSError) as exc:
            reason = exc.message if isinstance(exc, SampleError) else str(exc)
            raise Retryable(
                ErrorClass.PROXY_ERROR, f"{what} failed on CONNECT {target.authority}: {reason}"
            ) from exc
        if not 200 <= status < 300:
            explained = _PROXY_STATUS.get(status, "")
            error = Retryable if status in (502, 503, 504) else SampleError
            raise error(
                ErrorClass.PROXY_ERROR,
                f"{what} refused CONNECT {target.authority}: HTTP {status}{explained}",
            )
        if stream.buffer:
            raise SampleError(ErrorClass.PROXY_ERROR, f"{what} sent data before the tunnel's TLS handshake")

    async def _start_tls(self, stream: _Stream, target: Target) -> None:
        """TLS on ``stream`` with the target (certificate checked for ``target.host``, SNI for names)."""
        if self._ssl is None:
            self._ssl = self._tls()
        loop = asyncio.get_running_loop()
        try:
            if stream.transport is None or stream.closed:
                raise ConnectionResetError("closed before the handshake")
            async with asyncio.timeout(self._connect_timeout):
                transport = await loop.start_tls(
                    stream.transport,
                    stream,
                    self._ssl,
                    server_hostname=target.host,
                    # asyncio's own limit stays out of the way of the one above
                    ssl_handshake_timeout=self._connect_timeout + 10,
                )
        except TimeoutError as exc:
            raise Retryable(
                ErrorClass.TLS_ERROR,
                f"TLS handshake with {target.host} stalled: no answer within {self._connect_timeout:g}s",
            ) from exc
        except ssl.SSLError as exc:
            raise handshake_error(target.host, exc) from exc
        except OSError as exc:
            raise Retryable(
                ErrorClass.TLS_ERROR, f"TLS handshake with {target.host} failed: connection closed ({exc})"
            ) from exc
        if transport is None:
            raise Retryable(
                ErrorClass.TLS_ERROR, f"TLS handshake with {target.host} failed: connection closed"
            )
        stream.transport = transport  # type: ignore[assignment]
        stream.tls = True


_PROXY_STATUS = {
    403: " (forbidden: the proxy does not allow this target or port)",
    407: " (proxy authentication required: wrong or missing credentials in the proxy URL)",
}
_PROXY_STATUS[401] = _PROXY_STATUS[407]  # tinyproxy's answer to wrong credentials


async def _lookup(host: str, port: int) -> list[tuple[int, str]]:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return list(dict.fromkeys((family, sockaddr[0]) for family, _, _, _, sockaddr in infos))
    return [(socket.AF_INET6 if ip.version == 6 else socket.AF_INET, host)]


@dataclass
class Response:
    """Status and headers of a response whose body is still on the connection (see ``read``)."""

    status: int
    headers: Headers
    connection: Connection
    keep_alive: bool
    content_length: int | None

    async def read(self, cap: int, truncate: bool = False) -> bytes:
        """The whole body, decoded; ``SampleError(TOO_LARGE)`` as soon as more than ``cap`` bytes arrive.

        The cap holds for the bytes on the wire and again for every decoded stage, so neither an
        endless stream nor a compression bomb is ever held in memory past it. With ``truncate``
        (files parsed only up to a limit, such as robots.txt), a longer body without a content
        coding gives its first ``cap`` bytes instead; the rest is left unread and the connection
        is closed, not reused.
        """
        codings = _content_codings(self.headers)
        decoder = _Decoder(codings, cap) if codings else None
        truncate = truncate and decoder is None
        stream = self.connection.stream
        framing = self.headers.get("transfer-encoding")
        if framing is not None:
            if framing.strip().lower() != "chunked":
                raise SampleError(ErrorClass.PROTOCOL_ERROR, f"unsupported Transfer-Encoding {framing!r}")
            body = await _read_chunked(stream, cap, decoder, truncate)
        elif self.content_length is not None:
            if self.content_length > cap:
                if not truncate:
                    raise SampleError(
                        ErrorClass.TOO_LARGE,
                        f"Content-Length {self.content_length} exceeds --max-bytes {cap}",
                        self.status,
                    )
                body = await _read_length(stream, cap, None)
            else:
                body = await _read_length(stream, self.content_length, decoder)
        else:
            self.keep_alive = False  # the body ends where the connection does
            body = await _read_to_close(stream, cap, decoder, truncate)
        if decoder is not None:
            body = decoder.finish(body)
        self.connection.reusable = self.keep_alive and not (truncate and len(body) >= cap)
        return body


async def request(connection: Connection, target: Target, headers: Sequence[tuple[str, str]]) -> Response:
    """Send ``GET target`` on ``connection`` and read the response head (the body is left unread)."""
    forward = connection.forward
    if forward is None:
        lines = [f"GET {target.path} HTTP/1.1", f"Host: {target.host_header}"]
    else:  # to a proxy: the absolute form, and its credentials
        lines = [f"GET http://{target.host_header}{target.path} HTTP/1.1", f"Host: {target.host_header}"]
        if forward.authorization:
            lines.append(f"Proxy-Authorization: {forward.authorization}")
    lines += [f"{name}: {value}" for name, value in headers]
    connection.reusable = False
    try:
        connection.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        while True:
            status, version, fields = await _read_head(connection.stream, target.host)
            if status >= 200 or status == 101:
                break  # 100 Continue and other interim answers precede the real one
    except (ConnectionResetError, BrokenPipeError) as exc:
        raise Retryable(ErrorClass.CONNECTION_RESET, f"connection reset by {target.host}") from exc
    if forward is not None and status in (401, 407) and _from_proxy(status, forward, fields):
        raise SampleError(
            ErrorClass.PROXY_ERROR,
            f"proxy {forward.display} refused GET http://{target.host_header}{target.path[:200]}: "
            f"HTTP {status}{_PROXY_STATUS[status]}",
        )
    head = Headers(fields)
    tokens = {t.strip().lower() for value in head.getall("connection") for t in value.split(",")}
    keep_alive = "close" not in tokens and (version == "HTTP/1.1" or "keep-alive" in tokens)
    length = None
    if "transfer-encoding" in head:
        # Both framings at once is how requests are smuggled: use chunked, then drop the connection.
        keep_alive = keep_alive and "content-length" not in head
    else:
        length = _content_length(head)
    if status in (204, 304) or status == 101:
        length = 0
    return Response(status, head, connection, keep_alive, length)


def _from_proxy(status: int, proxy: Proxy, fields: list[tuple[str, str]]) -> bool:
    """Whether a 401 or 407 on a connection to ``proxy`` is the proxy's own answer.

    407 always is. A 401 is when credentials were sent to the proxy and the answer has no ``Via``
    (a proxy adds one to what it forwards): tinyproxy answers wrong credentials with 401.
    """
    return status == 407 or (proxy.authorization is not None and all(name != "via" for name, _ in fields))


async def _read_head(stream: _Stream, host: str) -> tuple[int, str, list[tuple[str, str]]]:
    head = await stream.read_until(
        b"\r\n\r\n", MAX_HEAD_BYTES, f"response headers exceed {MAX_HEAD_BYTES} bytes"
    )
    if head is None:
        if not stream.buffer:
            raise Retryable(ErrorClass.CONNECTION_RESET, f"connection closed by {host} before a response")
        raise SampleError(ErrorClass.PROTOCOL_ERROR, f"connection closed by {host} inside the headers")
    lines = head.decode("latin-1").split("\r\n")
    if len(lines) - 1 > MAX_HEADERS:
        raise SampleError(ErrorClass.PROTOCOL_ERROR, f"more than {MAX_HEADERS} header fields")
    status_line = lines[0]
    version, _, rest = status_line.partition(" ")
    code = rest[:3]
    if version not in ("HTTP/1.1", "HTTP/1.0") or not _is_decimal(code) or rest[3:4] not in ("", " "):
        raise SampleError(ErrorClass.PROTOCOL_ERROR, f"invalid status line {status_line[:100]!r}")
    fields: list[tuple[str, str]] = []
    for line in lines[1:]:
        if len(line) > MAX_LINE_BYTES:
            raise SampleError(ErrorClass.PROTOCOL_ERROR, f"a header line exceeds {MAX_LINE_BYTES} bytes")
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip() or name[0] in " \t":
            raise SampleError(ErrorClass.PROTOCOL_ERROR, f"invalid header line {line[:100]!r}")
        fields.append((name.lower(), value.strip(" \t")))
    return int(code), version, fields


def _content_length(headers: Headers) -> int | None:
    values = {v.strip() for value in headers.getall("content-length") for v in value.split(",")}
    if not values:
        return None
    if len(values) > 1 or not _is_decimal(next(iter(values))):
        raise SampleError(ErrorClass.PROTOCOL_ERROR, f"invalid Content-Length {sorted(values)!r}")
    return int(values.pop())


def _is_decimal(text: str) -> bool:
    """ASCII digits only (``str.isdigit`` also accepts digits such as "²" that ``int`` refuses)."""
    return text.isascii() and text.isdigit()


def _content_codings(headers: Headers) -> list[str]:
    codings = [
        c.strip().lower()
        for value in headers.getall("content-encoding")
        for c in value.split(",")
        if c.strip()
    ]
    codings = [c for c in codings if c != "identity"]
    if len(codings) > MAX_CODINGS:
        raise SampleError(ErrorClass.PROTOCOL_ERROR, f"{len(codings)} stacked content codings")
    for coding in codings:
        if coding not in ("gzip", "x-gzip", "deflate"):
            raise SampleError(
                ErrorClass.PROTOCOL_ERROR, f"unsupported Content-Encoding {coding!r} (only gzip and deflate)"
            )
    return codings


class _Decoder:
    """Content codings undone in order (last applied, first undone), every stage held to ``cap``."""

    def __init__(self, codings: list[str], cap: int) -> None:
        self._stages: list[_Inflater] = [_Inflater(c, cap) for c in reversed(codings)]

    def feed(self, data: bytes) -> list[bytes]:
        """Decoded output of ``data`` (in pieces)."""
        pieces = [data]
        for stage in self._stages:
            pieces = [out for piece in pieces for out in stage.feed(piece)]
        return pieces

    def finish(self, decoded: bytes) -> bytes:
        """``decoded`` (the body decoded so far) plus what the stages still hold, after checking each
        stream ended."""
        tail = b""
        for stage in self._stages:
            tail = b"".join(stage.feed(tail)) + stage.flush()
        return decoded + tail


class _Inflater:
    def __init__(self, coding: str, cap: int) -> None:
        self._coding = coding
        self._cap = cap
        self._size = 0
        self._inflater: zlib._Decompress | None = None  # created on the first bytes (deflate sniffs them)

    def feed(self, data: bytes) -> list[bytes]:
        if not data:
            return []
        if self._inflater is None:
            self._inflater = zlib.decompressobj(self._wbits(data))
        out: list[bytes] = []
        try:
            while data:
                piece = self._inflater.decompress(data, self._cap - self._size + 1)
                self._grow(piece, out)
                data = self._inflater.unconsumed_tail
        except zlib.error as exc:
            raise SampleError(ErrorClass.PROTOCOL_ERROR, f"cannot decode {self._coding} body: {exc}") from exc
        return out

    def flush(self) -> bytes:
        if self._inflater is None:
            return b""
        try:
            out = self._inflater.flush()
        except zlib.error as exc:
            raise SampleError(ErrorClass.PROTOCOL_ERROR, f"cannot decode {self._coding} body: {exc}") from exc
        if not self._inflater.eof:
            raise SampleError(ErrorClass.TRUNCATED, f"{self._coding} body ended early")
        collected: list[bytes] = []
        self._grow(out, collected)
        return b"".join(collected)

    def _grow(self, piece: bytes, out: list[bytes]) -> None:
        self._size += len(piece)
        if self._size > self._cap:
            raise SampleError(ErrorClass.TOO_LARGE, f"decoded body exceeds --max-bytes {self._cap}", 200)
        if piece:
            out.append(piece)

    def _wbits(self, head: bytes) -> int:
        if self._coding != "deflate":
            return 16 + zlib.MAX_WBITS
        # "deflate" is meant to be zlib-wrapped, but some servers send a raw stream.
        wrapped = len(head) >= 2 and head[0] & 0x0F == 8 and ((head[0] << 8) | head[1]) % 31 == 0
        return zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS


def _decoded(pieces: list[bytes], data: bytes, decoder: _Decoder | None) -> None:
    if decoder is None:
        pieces.append(data)
    else:
        pieces.extend(decoder.feed(data))


async def _read_length(stream: _Stream, length: int, decoder: _Decoder | None) -> bytes:
    if decoder is None:
        await stream.wait_for(length)
        if len(stream.buffer) < length:
            raise SampleError(
                ErrorClass.TRUNCATED, f"body ended after {len(stream.buffer)} of {length} bytes"
            )
        return stream.take(length)
    pieces: list[bytes] = []
    await _read_exactly(stream, length, pieces, decoder, "body")
    return b"".join(pieces)


async def _read_to_close(
    stream: _Stream, cap: int, decoder: _Decoder | None, truncate: bool = False
) -> bytes:
    pieces: list[bytes] = []
    size = 0
    while True:
        if not stream.buffer:
            if stream.closed:
                return b"".join(pieces)
            await stream.wait_for(1)
            continue
        data = stream.take(len(stream.buffer))
        size += len(data)
        if size > cap:
            if truncate:
                pieces.append(data[: len(data) - (size - cap)])
                return b"".join(pieces)
            raise SampleError(ErrorClass.TOO_LARGE, f"body exceeds --max-bytes {cap}", 200)
        _decoded(pieces, data, decoder)


async def _read_line(stream: _Stream, limit: int, what: str) -> bytes:
    line = await stream.read_until(b"\r\n", limit, f"{what} longer than {limit} bytes")
    if line is None:
        raise SampleError(ErrorClass.TRUNCATED, "chunked body ended early")
    return line


async def _read_exactly(
    stream: _Stream, size: int, pieces: list[bytes], decoder: _Decoder | None, what: str
) -> None:
    """Move the next ``size`` bytes of ``stream`` into ``pieces`` (decoded), as they arrive."""
    left = size
    while left:
        if not stream.buffer:
            await stream.wait_for(1)
            if not stream.buffer:
                raise SampleError(ErrorClass.TRUNCATED, f"{what} ended after {size - left} of {size} bytes")
        data = stream.take(min(left, len(stream.buffer)))
        left -= len(data)
        _decoded(pieces, data, decoder)


async def _read_chunked(stream: _Stream, cap: int, decoder: _Decoder | None, truncate: bool = False) -> bytes:
    pieces: list[bytes] = []
    size = 0
    while True:
        line = await _read_line(stream, 1024, "chunk header")
        digits = line.split(b";", 1)[0].strip()
        # Hex digits only: int(..., 16) alone would also take "0x10", "+5" and "1_0".
        if not digits or digits.strip(b"0123456789abcdefABCDEF"):
            raise SampleError(ErrorClass.PROTOCOL_ERROR, f"invalid chunk size {line[:40]!r}")
        chunk = int(digits, 16)
        if chunk == 0:
            trailers = 0
            while await _read_line(stream, MAX_LINE_BYTES, "trailer line"):  # trailer fields, ignored
                trailers += 1
                if trailers > MAX_HEADERS:
                    raise SampleError(ErrorClass.PROTOCOL_ERROR, f"more than {MAX_HEADERS} trailer fields")
            return b"".join(pieces)
        size += chunk
        if size > cap:
            if truncate:
                await _read_exactly(stream, chunk - (size - cap), pieces, decoder, "chunk")
                return b"".join(pieces)
            raise SampleError(ErrorClass.TOO_LARGE, f"body exceeds --max-bytes {cap}", 200)
        await _read_exactly(stream, chunk, pieces, decoder, "chunk")
        await stream.wait_for(2)
        if len(stream.buffer) < 2:
            raise SampleError(ErrorClass.TRUNCATED, "chunked body ended early")
        if stream.take(2) != b"\r\n":
            raise SampleError(ErrorClass.PROTOCOL_ERROR, "chunk not followed by CRLF")
