"""The HTTP/1.1 client against a scripted server on 127.0.0.1: framing, codings, reuse, refusals."""

from __future__ import annotations

import asyncio
import gzip
import socket
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from pipeline.errors import ErrorClass, SampleError, UserInputError
from pipeline.fetch import Fetcher, FetchOptions
from pipeline.fetch.host_options import OptOutOptions
from pipeline.fetch.http11 import parse_target

ALLOW = ("127.0.0.1/32",)
JPEG = b"\xff\xd8" + bytes(range(256)) * 40
NO_SITE_FILES = OptOutOptions(robots_txt=False, tdmrep="header")


@dataclass(frozen=True)
class Reply:
    """One scripted answer: raw bytes, then optionally close the connection."""

    data: bytes
    close: bool = False


def ok(body: bytes = JPEG, *headers: str, close: bool = False) -> Reply:
    head = "".join(h + "\r\n" for h in ("Content-Type: image/jpeg", *headers))
    if not any(h.lower().startswith(("content-length", "transfer-encoding")) for h in headers):
        head += f"Content-Length: {len(body)}\r\n"
    return Reply(f"HTTP/1.1 200 OK\r\n{head}\r\n".encode() + body, close)


@dataclass
class ScriptedServer:
    """Answers the n-th request (over any connection) with ``replies[n]``; keeps connections open."""

    replies: list[Reply]
    requests: list[tuple[int, bytes]] = field(default_factory=list)  # (connection number, request)
    connections: int = 0

    def __post_init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                number = self.connections
            threading.Thread(target=self._serve, args=(conn, number), daemon=True).start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        with conn:
            data = b""
            while True:
                while b"\r\n\r\n" not in data:
                    try:
                        more = conn.recv(65536)
                    except OSError:
                        return
                    if not more:
                        return
                    data += more
                head, _, data = data.partition(b"\r\n\r\n")
                with self._lock:
                    index = len(self.requests)
                    self.requests.append((number, head))
                if index >= len(self.replies):
                    return
                reply = self.replies[index]
                conn.sendall(reply.data)
                if reply.close:
                    return

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def scripted() -> Iterator[Callable[..., ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def make(*replies: Reply) -> ScriptedServer:
        servers.append(ScriptedServer(list(replies)))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def fetch_all(urls: list[str], getaddrinfo=None, **extra: object) -> list[object]:
    """Fetch ``urls`` one after another through one Fetcher; each result or its SampleError.

    Scripted replies answer requests in order, so robots.txt and tdmrep.json are not asked for.
    """
    options = {"allow_networks": ALLOW, "total_timeout": 2.0, "retries": 0, "opt_outs": NO_SITE_FILES}
    options.update(extra)

    async def go() -> list[object]:
        out: list[object] = []
        async with Fetcher(FetchOptions(**options), getaddrinfo=getaddrinfo) as fetcher:
            for url in urls:
                try:
                    out.append(await fetcher.fetch(url))
                except SampleError as exc:
                    out.append(exc)
        return out

    return asyncio.run(go())


def raw_deflate(data: bytes) -> bytes:
    """A deflate stream without the zlib wrapper, as some servers send for ``deflate``."""
    compressor = zlib.compressobj(wbits=-15)
    return compressor.compress(data) + compressor.flush()


def error_of(result: object) -> ErrorClass:
    assert isinstance(result, SampleError), f"expected a failure, got {result!r}"
    return result.error_class


def test_keep_alive_connections_are_reused(scripted) -> None:
    server = scripted(ok(), ok(), ok())
    results = fetch_all([f"{server.base}/{i}.jpg" for i in range(3)])
    assert [r.body for r in results] == [JPEG] * 3
    assert server.connections == 1
    first = server.requests[0][1].decode()
    assert first.startswith("GET /0.jpg HTTP/1.1\r\n")
    assert f"Host: {server.base[len('http://') :]}" in first


@pytest.mark.parametrize(
    "closing",
    [
        ok(JPEG, "Connection: close", close=True),
        Reply(b"HTTP/1.0 200 OK\r\nContent-Type: image/jpeg\r\n\r\n" + JPEG, True),
    ],
    ids=["connection-close", "http10-until-close"],
)
def test_connections_the_server_ends_are_not_reused(scripted, closing: Reply) -> None:
    server = scripted(closing, ok())
    results = fetch_all([f"{server.base}/a.jpg", f"{server.base}/b.jpg"])
    assert [r.body for r in results] == [JPEG, JPEG]
    assert server.connections == 2


def test_an_idle_connection_closed_by_the_server_is_replaced_not_failed(scripted) -> None:
    server = scripted(ok(close=True), ok())  # closes after answering, without saying so

    async def go() -> list[bytes]:
        opts = FetchOptions(allow_networks=ALLOW, total_timeout=2.0, retries=0, opt_outs=NO_SITE_FILES)
        async with Fetcher(opts) as fetcher:
            first = await fetcher.fetch(f"{server.base}/a.jpg")
            await asyncio.sleep(0.2)  # the loop sees the server's FIN on the idle connection
            second = await fetcher.fetch(f"{server.base}/b.jpg")
        return [first.body, second.body]

    assert asyncio.run(go()) == [JPEG, JPEG]
    assert server.connections == 2


def test_chunked_body_with_extensions_and_trailers(scripted) -> None:
    body = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in (JPEG[:100], JPEG[100:]))
    server = scripted(ok(body + b"0\r\nX-Trailer: yes\r\n\r\n", "Transfer-Encoding: chunked"), ok())
    results = fetch_all([f"{server.base}/a.jpg", f"{server.base}/b.jpg"])
    assert [r.body for r in results] == [JPEG, JPEG]
    assert server.connections == 1  # the chunked body ended cleanly: the connection is reused


@pytest.mark.parametrize(
    ("coding", "encoded"),
    [
        ("gzip", gzip.compress(JPEG)),
        ("x-gzip", gzip.compress(JPEG)),
        ("deflate", zlib.compress(JPEG)),
        ("deflate", raw_deflate(JPEG)),
        ("gzip, gzip", gzip.compress(gzip.compress(JPEG))),
        ("identity", JPEG),
    ],
    ids=["gzip", "x-gzip", "deflate-zlib", "deflate-raw", "stacked", "identity"],
)
def test_content_codings_are_decoded(scripted, coding: str, encoded: bytes) -> None:
    server = scripted(ok(encoded, f"Content-Encoding: {coding}"))
    assert fetch_all([f"{server.base}/a.jpg"])[0].body == JPEG


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (ok(gzip.compress(JPEG)[:-20], "Content-Encoding: gzip", close=True), ErrorClass.TRUNCATED),
        (ok(b"not gzip at all", "Content-Encoding: gzip"), ErrorClass.PROTOCOL_ERROR),
        (ok(JPEG, "Content-Encoding: zstd"), ErrorClass.PROTOCOL_ERROR),
        (ok(JPEG, "Content-Encoding: gzip, gzip, gzip, gzip, gzip"), ErrorClass.PROTOCOL_ERROR),
        (ok(b"5\r\nab", "Transfer-Encoding: chunked", close=True), ErrorClass.TRUNCATED),
        (ok(b"zz\r\n", "Transfer-Encoding: chunked"), ErrorClass.PROTOCOL_ERROR),
        (ok(b"0x5\r\nabcde\r\n0\r\n\r\n", "Transfer-Encoding: chunked"), ErrorClass.PROTOCOL_ERROR),
        (
            ok(b"5;" + b"x" * 2000 + b"\r\nabcde\r\n0\r\n\r\n", "Transfer-Encoding: chunked"),
            ErrorClass.PROTOCOL_ERROR,
        ),
        (ok(b"2\r\nabXY", "Transfer-Encoding: chunked"), ErrorClass.PROTOCOL_ERROR),
        (ok(JPEG, "Transfer-Encoding: gzip"), ErrorClass.PROTOCOL_ERROR),
        (
            ok(JPEG, f"Content-Length: {len(JPEG)}", f"Content-Length: {len(JPEG) + 1}"),
            ErrorClass.PROTOCOL_ERROR,
        ),
        (ok(JPEG, "Content-Length: -1"), ErrorClass.PROTOCOL_ERROR),
        (Reply("HTTP/1.1 200 OK\r\nContent-Length: ²\r\n\r\n".encode("latin-1")), ErrorClass.PROTOCOL_ERROR),
        (Reply("HTTP/1.1 2²0 OK\r\n\r\n".encode("latin-1")), ErrorClass.PROTOCOL_ERROR),
        (ok(JPEG, f"Content-Length: {len(JPEG) + 10}", close=True), ErrorClass.TRUNCATED),
        (Reply(b"HTTP/2 200 OK\r\n\r\n"), ErrorClass.PROTOCOL_ERROR),
        (Reply(b"HTTP/1.1 2000 OK\r\n\r\n"), ErrorClass.PROTOCOL_ERROR),
        (Reply(b"ICY 200 OK\r\n\r\n"), ErrorClass.PROTOCOL_ERROR),
        (
            Reply(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\n folded: line\r\n\r\n"),
            ErrorClass.PROTOCOL_ERROR,
        ),
        (Reply(b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n"), ErrorClass.PROTOCOL_ERROR),
        (Reply(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\n", close=True), ErrorClass.PROTOCOL_ERROR),
        (Reply(b"", close=True), ErrorClass.CONNECTION_RESET),
    ],
)
def test_malformed_responses_are_refused_with_a_class(scripted, reply: Reply, error: ErrorClass) -> None:
    server = scripted(reply)
    result = fetch_all([f"{server.base}/a.jpg"])[0]
    assert error_of(result) is error, getattr(result, "message", result)


def test_a_failed_response_never_leaves_its_connection_for_reuse(scripted) -> None:
    server = scripted(ok(b"2\r\nabXY", "Transfer-Encoding: chunked"), ok())
    first, second = fetch_all([f"{server.base}/a.jpg", f"{server.base}/b.jpg"])
    assert error_of(first) is ErrorClass.PROTOCOL_ERROR
    assert second.body == JPEG and server.connections == 2


def test_a_response_framed_two_ways_is_read_chunked_and_its_connection_dropped(scripted) -> None:
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(JPEG), JPEG)
    server = scripted(ok(chunked, "Transfer-Encoding: chunked", "Content-Length: 5"), ok())
    results = fetch_all([f"{server.base}/a.jpg", f"{server.base}/b.jpg"])
    assert [r.body for r in results] == [JPEG, JPEG]
    assert server.connections == 2


def test_extra_bytes_after_the_body_drop_the_connection(scripted) -> None:
    server = scripted(Reply(ok().data + b"HTTP/1.1 200 OK\r\n\r\n"), ok())
    results = fetch_all([f"{server.base}/a.jpg", f"{server.base}/b.jpg"])
    assert [r.body for r in results] == [JPEG, JPEG]
    assert server.connections == 2  # what followed the body was not taken as the next answer


def test_interim_responses_are_skipped(scripted) -> None:
    server = scripted(Reply(b"HTTP/1.1 100 Continue\r\n\r\n" + ok().data))
    assert fetch_all([f"{server.base}/a.jpg"])[0].body == JPEG


def test_a_body_arriving_after_the_deadline_drops_the_connection(scripted) -> None:
    slow = Reply(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 100\r\n\r\nshort")
    server = scripted(slow, ok())
    first, second = fetch_all([f"{server.base}/a.jpg", f"{server.base}/b.jpg"], total_timeout=0.5)
    assert error_of(first) is ErrorClass.TIMEOUT
    assert second.body == JPEG and server.connections == 2


def test_non_ascii_urls_are_sent_encoded(scripted) -> None:
    server = scripted(ok())
    port = server.base.rsplit(":", 1)[1]
    seen: list[str] = []

    def getaddrinfo(host: str, port_: int, family: int):
        seen.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port_))]

    result = fetch_all([f"http://bücher.test:{port}/café/ß.jpg?q=é"], getaddrinfo=getaddrinfo, dns_ttl=0)[0]
    assert result.body == JPEG
    assert seen == ["xn--bcher-kva.test"]
    request = server.requests[0][1].decode("ascii")
    assert request.startswith("GET /caf%C3%A9/%C3%9F.jpg?q=%C3%A9 HTTP/1.1\r\n")
    assert f"Host: xn--bcher-kva.test:{port}\r\n" in request


def test_request_targets_keep_escapes_and_refuse_white_space() -> None:
    target = parse_target("http", "example.org", None, "/a%20b/c", "x=1&y=%2F")
    assert (target.path, target.host_header) == ("/a%20b/c?x=1&y=%2F", "example.org")
    assert parse_target("https", "::1", 8443, "", "").host_header == "[::1]:8443"
    with pytest.raises(SampleError) as info:
        parse_target("ftp", "example.org", None, "/", "")
    assert info.value.error_class is ErrorClass.UNSUPPORTED_SCHEME


def test_a_user_agent_token_that_cannot_be_a_header_is_refused_up_front() -> None:
    for token in ("ops@exämple.org", "a\r\nX-Injected: 1"):
        with pytest.raises(UserInputError, match="user-agent-token"):
            FetchOptions(user_agent_token=token)
