"""The fetcher against a real HTTP server on 127.0.0.1, one fault at a time."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from pipeline.errors import ErrorClass, SampleError
from pipeline.fetch import Fetcher, FetchOptions
from pipeline.synthetic.server import WorldServer
from testkit.net import free_port

ALLOW = ("127.0.0.1/32",)


def fetch(url: str, getaddrinfo=None, **options: object):
    options = {"allow_networks": ALLOW, "total_timeout": 2.0, "backoff_base": 0.05, **options}

    async def go():
        async with Fetcher(FetchOptions(**options), getaddrinfo=getaddrinfo) as fetcher:
            return await fetcher.fetch(url)

    return asyncio.run(go())


def fails(url: str, **options: object) -> SampleError:
    with pytest.raises(SampleError) as info:
        fetch(url, **options)
    return info.value


def test_ok_sends_a_clear_user_agent(server: WorldServer) -> None:
    result = fetch(f"{server.base_url}/images/000001.jpg", user_agent_token="ops@example.org")
    assert result.status == 200 and result.body[:2] == b"\xff\xd8"
    agent = [ua for _, path, ua in server.request_log if path == "/images/000001.jpg"][-1]
    assert agent.startswith("corpusforge/") and "ops@example.org" in agent


@pytest.mark.parametrize(
    ("fault", "error", "status"),
    [
        ("404", ErrorClass.HTTP_ERROR, 404),
        ("410", ErrorClass.HTTP_ERROR, 410),
        ("wrong_type", ErrorClass.BAD_CONTENT_TYPE, 200),
        ("optout", ErrorClass.OPTED_OUT, 200),
        ("gzip_bomb", ErrorClass.TOO_LARGE, 200),
        ("truncated", ErrorClass.TRUNCATED, None),
        ("redirect_loop", ErrorClass.TOO_MANY_REDIRECTS, None),
        ("redirect_private", ErrorClass.ADDRESS_REFUSED, None),
    ],
)
def test_faults_are_classified(
    server: WorldServer, fault: str, error: ErrorClass, status: int | None
) -> None:
    exc = fails(f"{server.base_url}/fault/{fault}/images/000002.jpg")
    assert exc.error_class is error, exc.message
    assert exc.http_status == status


def test_non_retryable_errors_are_not_retried(server: WorldServer) -> None:
    path = "/fault/404/images/000003.jpg"
    fails(server.base_url + path, retries=3)
    assert server.requests[path] == 1


def test_5xx_and_resets_are_retried_then_reported(server: WorldServer) -> None:
    for fault, error in (("500", ErrorClass.HTTP_ERROR), ("reset", ErrorClass.CONNECTION_RESET)):
        path = f"/fault/{fault}/images/000004.jpg"
        assert fails(server.base_url + path, retries=2).error_class is error
        assert server.requests[path] == 3


def test_retry_after_is_honoured(server: WorldServer) -> None:
    path = "/fault/503_then_ok/images/000005.jpg"
    assert fetch(server.base_url + path, retries=1).status == 200
    times = [t for t, p, _ in server.request_log if p == path]
    assert len(times) == 2
    assert times[1] - times[0] >= 0.95  # the server asked for Retry-After: 1


def test_retry_after_longer_than_allowed_gives_up(server: WorldServer) -> None:
    exc = fails(f"{server.base_url}/fault/429_then_ok/images/000006.jpg", retries=3, max_retry_wait=0.5)
    assert exc.error_class is ErrorClass.HTTP_ERROR and exc.http_status == 429
    assert "Retry-After" in exc.message


def test_timeout(server: WorldServer) -> None:
    exc = fails(f"{server.base_url}/fault/slow/images/000007.jpg", total_timeout=0.5, retries=0)
    assert exc.error_class is ErrorClass.TIMEOUT


def test_byte_cap(server: WorldServer) -> None:
    exc = fails(f"{server.base_url}/images/000008.jpg", max_bytes=1000)
    assert exc.error_class is ErrorClass.TOO_LARGE


def test_redirect_is_followed(server: WorldServer) -> None:
    result = fetch(f"{server.base_url}/fault/redirect/images/000009.jpg")
    assert result.final_url == f"{server.base_url}/images/000009.jpg"


def test_loopback_refused_without_allow_flag(server: WorldServer) -> None:
    port = server.server_address[1]
    for url in (
        f"http://127.0.0.1:{port}/images/000001.jpg",
        f"http://localhost:{port}/images/000001.jpg",
        f"http://127.0.0.2:{port}/images/000001.jpg",
        f"http://2130706433:{port}/images/000001.jpg",
        f"http://0177.0.0.1:{port}/images/000001.jpg",
        f"http://[::1]:{port}/images/000001.jpg",
    ):
        before = sum(server.requests.values())
        exc = fails(url, allow_networks=())
        assert exc.error_class is ErrorClass.ADDRESS_REFUSED, (url, exc.message)
        assert sum(server.requests.values()) == before  # refused before any connection


def test_names_resolving_to_private_ranges_are_refused() -> None:
    # The resolver is stubbed: no real DNS and no connection happen.
    answers = {"intranet.test": "10.0.0.7", "metadata.test": "169.254.169.254", "mixed.test": "192.168.0.1"}

    def getaddrinfo(host: str, port: int, family: int):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], port))]

    for host in answers:
        exc = fails(f"http://{host}/x.jpg", getaddrinfo=getaddrinfo, allow_networks=())
        assert exc.error_class is ErrorClass.ADDRESS_REFUSED
        assert answers[host] in exc.message


def test_dns_failure_class_and_cache(server: WorldServer) -> None:
    calls: list[str] = []
    port = server.server_address[1]

    def getaddrinfo(host: str, port_: int, family: int):
        calls.append(host)
        if host == "missing.test":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port_))]

    assert fails("http://missing.test/x.jpg", getaddrinfo=getaddrinfo).error_class is ErrorClass.DNS_ERROR

    async def twice():
        opts = FetchOptions(allow_networks=ALLOW, dns_ttl=60)
        async with Fetcher(opts, getaddrinfo=getaddrinfo) as fetcher:
            for name in ("000010.jpg", "000011.jpg"):
                await fetcher.fetch(f"http://cached-{port}.test:{port}/images/{name}")

    asyncio.run(twice())
    assert calls.count(f"cached-{port}.test") == 1


def test_per_host_concurrency_cap_is_respected(world: Path) -> None:
    with WorldServer(world, slow_seconds=0.3) as slow:

        async def many():
            opts = FetchOptions(allow_networks=ALLOW, concurrency=32, per_host_concurrency=3)
            async with Fetcher(opts) as fetcher:
                urls = [f"{slow.base_url}/fault/slow/images/{i:06d}.jpg" for i in range(12)]
                return await asyncio.gather(*(fetcher.fetch(u) for u in urls))

        results = asyncio.run(many())
        assert len(results) == 12
        assert 1 < slow.max_in_flight <= 3


def test_concurrency_caps_requests_in_flight_across_hosts(world: Path) -> None:
    with WorldServer(world, slow_seconds=0.3) as slow:
        port = slow.server_address[1]

        def getaddrinfo(host: str, port_: int, family: int):
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port_))]

        async def many():
            opts = FetchOptions(allow_networks=ALLOW, concurrency=2, per_host_concurrency=8, dns_ttl=0)
            async with Fetcher(opts, getaddrinfo=getaddrinfo) as fetcher:
                # Three names for the same server: three hosts, one cap over all of them.
                urls = [f"http://h{i % 3}.test:{port}/fault/slow/images/{i:06d}.jpg" for i in range(9)]
                return await asyncio.gather(*(fetcher.fetch(u) for u in urls))

        assert len(asyncio.run(many())) == 9
        assert slow.max_in_flight == 2


def test_connection_refused_is_a_connect_error() -> None:
    port = free_port()  # nothing listens there
    exc = fails(f"http://127.0.0.1:{port}/x.jpg", retries=2)
    assert exc.error_class is ErrorClass.CONNECT_ERROR


def test_waiting_for_a_host_slot_is_not_a_timeout(world: Path) -> None:
    # 8 requests of 0.3 s through 1 connection take 2.4 s: longer than the 1 s deadline per
    # request, which must only count from the moment a request gets its connection.
    with WorldServer(world, slow_seconds=0.3) as slow:

        async def queued():
            opts = FetchOptions(allow_networks=ALLOW, per_host_concurrency=1, total_timeout=1.0, retries=0)
            async with Fetcher(opts) as fetcher:
                urls = [f"{slow.base_url}/fault/slow/images/{i:06d}.jpg" for i in range(8)]
                return await asyncio.gather(*(fetcher.fetch(u) for u in urls))

        assert all(r.status == 200 for r in asyncio.run(queued()))
        assert slow.max_in_flight == 1


def _serve_raw(responses: list[bytes]) -> tuple[socket.socket, list[bytes]]:
    """A loopback server that answers the n-th request with ``responses[n]``; returns (socket, requests)."""
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    requests: list[bytes] = []

    def serve() -> None:
        for response in responses:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                requests.append(data)
                conn.sendall(response)

    threading.Thread(target=serve, daemon=True).start()
    return listener, requests


def test_cookies_are_not_carried_between_urls() -> None:
    jpeg = b"\xff\xd8" + b"x" * 100
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nConnection: close\r\n"
    missing = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    listener, requests = _serve_raw(
        [
            missing,  # /robots.txt
            missing,  # /.well-known/tdmrep.json
            answer + b"Set-Cookie: session=abc; Path=/\r\nContent-Length: %d\r\n\r\n" % len(jpeg) + jpeg,
            answer + b"Content-Length: %d\r\n\r\n" % len(jpeg) + jpeg,
        ]
    )
    # A host name (stubbed to 127.0.0.1): cookie jars never keep cookies set by bare IP addresses.
    base = f"http://shop.test:{listener.getsockname()[1]}"

    def getaddrinfo(host: str, port: int, family: int):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    async def both():
        opts = FetchOptions(allow_networks=ALLOW, total_timeout=2.0)
        async with Fetcher(opts, getaddrinfo=getaddrinfo) as fetcher:
            return [await fetcher.fetch(f"{base}/{name}.jpg") for name in ("first", "second")]

    with listener:
        assert [r.body for r in asyncio.run(both())] == [jpeg, jpeg]
    assert [r.split(b" ")[1] for r in requests[:2]] == [b"/robots.txt", b"/.well-known/tdmrep.json"]
    assert len(requests) == 4 and b"cookie" not in requests[3].lower()
