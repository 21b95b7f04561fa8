"""The fetcher against a server that attacks it: every attack refused with a class, memory bounded.

Only loopback is ever contacted: the hostile server listens on 127.0.0.1, redirects aim at other
loopback forms, and names that stand for private ranges go through a stubbed resolver. The socket
guard of tests/conftest.py fails any test whose code under test tries anything else.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import ErrorClass, SampleError
from pipeline.fetch import Fetcher, FetchOptions
from pipeline.image import process_image
from pipeline.image.options import ImageOptions
from testkit.hostile import HOSTILE_ROUTES, HostileServer

ALLOW = ("127.0.0.1/32",)
CAP = 2 * 1024 * 1024
# What holding a response costs at most: the capped body, its decoded copy, buffers.
MEMORY_BOUND = 8 * CAP + 16 * 1024 * 1024
CLEAR_REFS = Path("/proc/self/clear_refs")


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileServer]:
    with HostileServer(drip_seconds=0.2, drip_limit=30.0) as server:
        yield server


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def peak_growth(run: Callable[[], Any]) -> tuple[Any, int]:
    """Run ``run()``; return its result (or exception) and how far peak RSS rose above the start, in bytes."""
    CLEAR_REFS.write_text("5")  # resets VmHWM (the peak) to the current RSS
    start = _status_kb("VmRSS")
    try:
        result: Any = run()
    except SampleError as exc:
        result = exc
    return result, (_status_kb("VmHWM") - start) * 1024


def fetch(url: str, getaddrinfo=None, **options: object):
    options = {"allow_networks": ALLOW, "total_timeout": 2.0, "max_bytes": CAP, "retries": 0, **options}

    async def go():
        async with Fetcher(FetchOptions(**options), getaddrinfo=getaddrinfo) as fetcher:
            return await fetcher.fetch(url)

    return asyncio.run(go())


def test_every_route_is_documented_and_served(hostile: HostileServer) -> None:
    assert fetch(hostile.base_url + "/ok.jpg").body[:2] == b"\xff\xd8"
    for route in HOSTILE_ROUTES:
        assert hasattr(hostile.RequestHandlerClass, "_route_" + route.strip("/").replace(".", "_")), route


needs_proc = pytest.mark.skipif(not CLEAR_REFS.exists(), reason="peak memory is read from /proc (Linux)")


@needs_proc
@pytest.mark.parametrize(
    ("route", "error"),
    [
        ("/endless_chunked", ErrorClass.TOO_LARGE),
        ("/endless_close", ErrorClass.TOO_LARGE),
        ("/content_length_lie", ErrorClass.TOO_LARGE),
        ("/gzip_bomb", ErrorClass.TOO_LARGE),
        ("/deflate_bomb", ErrorClass.TOO_LARGE),
        # Stacked codings are undone layer by layer, each layer held to the cap.
        ("/double_gzip_bomb", ErrorClass.TOO_LARGE),
        # No Brotli decoder is installed, so a br body (a potential bomb) is refused outright.
        ("/brotli", ErrorClass.PROTOCOL_ERROR),
        ("/header_flood", ErrorClass.PROTOCOL_ERROR),
        ("/huge_header", ErrorClass.PROTOCOL_ERROR),
        ("/slow_drip", ErrorClass.TIMEOUT),
        ("/slow_headers", ErrorClass.TIMEOUT),
        ("/svg", ErrorClass.BAD_CONTENT_TYPE),
        ("/redirect_loop", ErrorClass.TOO_MANY_REDIRECTS),
    ],
)
def test_hostile_responses_are_refused_in_bounded_memory(
    hostile: HostileServer, route: str, error: ErrorClass
) -> None:
    result, growth = peak_growth(lambda: fetch(hostile.base_url + route))
    assert isinstance(result, SampleError), f"{route} was accepted"
    assert result.error_class is error, result.message
    assert growth < MEMORY_BOUND, f"{route} raised peak memory by {growth / 1e6:.0f} MB"
    # Endless streams were abandoned, not drained: at most the cap plus socket buffers were sent.
    assert hostile.bytes_sent[route] < 16 * CAP


@needs_proc
@pytest.mark.parametrize(
    ("route", "error"),
    [
        ("/png_bomb", ErrorClass.IMAGE_TOO_LARGE),
        ("/jpeg_bomb", ErrorClass.IMAGE_TOO_LARGE),
        ("/html_as_jpeg", ErrorClass.UNDECODABLE),
        ("/svg_as_jpeg", ErrorClass.UNDECODABLE),
    ],
)
def test_image_bombs_and_disguised_documents_are_refused_before_decoding(
    hostile: HostileServer, route: str, error: ErrorClass
) -> None:
    # 60000 x 60000 RGB would be 10.8 GB decoded: the header check must refuse it first.
    result, growth = peak_growth(lambda: process_image(fetch(hostile.base_url + route).body, ImageOptions()))
    assert isinstance(result, SampleError), f"{route} was accepted"
    assert result.error_class is error, result.message
    assert growth < MEMORY_BOUND, f"{route} raised peak memory by {growth / 1e6:.0f} MB"


def _stub(answers: dict[str, list[str]]):
    def getaddrinfo(host: str, port: int, family: int) -> list[tuple[Any, ...]]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in answers[host]
        ]

    return getaddrinfo


# Names standing for every range the policy refuses; resolved by a stub, never by real DNS.
PRIVATE_NAMES = {
    "loop2.test": ["127.0.0.2"],
    "v6loop.test": ["::1"],
    "ten.test": ["10.0.0.7"],
    "172-16.test": ["172.16.0.1"],
    "172-31.test": ["172.31.255.254"],
    "home.test": ["192.168.1.1"],
    "metadata.test": ["169.254.169.254"],
    "zero.test": ["0.0.0.0"],
    "cgnat.test": ["100.64.0.1"],
    "linklocal6.test": ["fe80::1"],
    "ula6.test": ["fc00::1"],
    "mapped6.test": ["::ffff:10.0.0.1"],
    # One allowed answer does not launder a private one: the whole name is refused.
    "mixed.test": ["127.0.0.1", "10.0.0.7"],
    "localhost": ["127.0.0.1", "::1"],
}


@pytest.mark.parametrize("name", sorted(PRIVATE_NAMES))
def test_names_resolving_to_any_private_range_are_refused(hostile: HostileServer, name: str) -> None:
    stub = _stub({**PRIVATE_NAMES, "hostile.test": ["127.0.0.1"]})
    before, redirects = hostile.requests["/ok.jpg"], hostile.requests["/redirect"]
    # dns_ttl=0: the stub's answers must not stay in the process-wide DNS cache.
    with pytest.raises(SampleError) as direct:
        fetch(f"http://{name}:{hostile.port}/ok.jpg", getaddrinfo=stub, dns_ttl=0)
    assert direct.value.error_class is ErrorClass.ADDRESS_REFUSED, direct.value.message
    # The same name reached through a redirect from an allowed host.
    with pytest.raises(SampleError) as redirected:
        fetch(
            f"http://hostile.test:{hostile.port}/redirect?to=http://{name}:{hostile.port}/ok.jpg",
            getaddrinfo=stub,
            dns_ttl=0,
        )
    assert redirected.value.error_class is ErrorClass.ADDRESS_REFUSED, redirected.value.message
    assert hostile.requests["/redirect"] == redirects + 1  # the first hop was served
    assert hostile.requests["/ok.jpg"] == before
    assert hostile.requests["/ok.jpg"] == before


@pytest.mark.parametrize(
    ("host", "error"),
    [
        ("127.0.0.2", ErrorClass.ADDRESS_REFUSED),
        ("[::1]", ErrorClass.ADDRESS_REFUSED),
        ("[::ffff:127.0.0.2]", ErrorClass.ADDRESS_REFUSED),
        ("0.0.0.0", ErrorClass.ADDRESS_REFUSED),
        ("2130706434", ErrorClass.ADDRESS_REFUSED),  # 127.0.0.2 as one decimal number
        ("0177.0.0.2", ErrorClass.ADDRESS_REFUSED),  # octal
        ("0x7f.2", ErrorClass.ADDRESS_REFUSED),  # hex, two parts
        ("0x7f000002", ErrorClass.ADDRESS_REFUSED),
        # The allowed 127.0.0.1 in a non-canonical form is refused too (it could hide anything).
        ("2130706433", ErrorClass.INVALID_URL),
        ("0177.0.0.1", ErrorClass.INVALID_URL),
        ("0x7f.1", ErrorClass.INVALID_URL),
        ("127.1", ErrorClass.INVALID_URL),
    ],
)
def test_redirects_to_other_loopback_forms_are_refused_before_connecting(
    hostile: HostileServer, host: str, error: ErrorClass
) -> None:
    before = hostile.requests["/ok.jpg"]
    with pytest.raises(SampleError) as info:
        fetch(f"{hostile.base_url}/redirect?to=http://{host}:{hostile.port}/ok.jpg")
    assert info.value.error_class is error, info.value.message
    assert hostile.requests["/ok.jpg"] == before, "the refused target was contacted"


def test_a_redirect_to_an_allowed_host_still_works(hostile: HostileServer) -> None:
    # The control for the refusals above: the same redirect to the allowed address succeeds.
    result = fetch(f"{hostile.base_url}/redirect?to=http://127.0.0.1:{hostile.port}/ok.jpg")
    assert result.final_url == f"{hostile.base_url}/ok.jpg"
