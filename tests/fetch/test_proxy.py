"""The fetcher through a real proxy: tinyproxy on 127.0.0.1, started and stopped by fixtures.

What went through the proxy is proven at the proxy (its log lists every request line it got)
and at the origin (tinyproxy adds a ``Via`` header to what it forwards); https goes through a
``CONNECT`` tunnel with TLS to the target inside (SNI and certificate for the target host).
The address policy is applied to the target before the proxy is asked anything.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from pipeline.errors import ErrorClass, SampleError
from pipeline.fetch import Fetcher, FetchOptions
from testkit.hostile import HostileServer
from testkit.net import free_port
from testkit.proxy import VIA_NAME, Tinyproxy
from testkit.tls import LocalCA, TlsHostileServer

ALLOW = ("127.0.0.1/32",)
USER, PASSWORD = "crawler", "s3cret-pass"
NAMES = {"localhost": "127.0.0.1", "private.test": "127.0.0.2"}


def _getaddrinfo(host: str, port: int, family: int) -> list[tuple]:
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (NAMES[host], port))]


def fetch(url: str, environ: Mapping[str, str] | None = None, **options: object) -> object:
    """The result of fetching ``url``, or its SampleError; proxies from ``environ`` (default none)."""
    options = {"allow_networks": ALLOW, "total_timeout": 5.0, "retries": 0, **options}

    async def go() -> object:
        async with Fetcher(FetchOptions(**options), getaddrinfo=_getaddrinfo, environ=environ or {}) as f:
            try:
                return await f.fetch(url)
            except SampleError as exc:
                return exc

    return asyncio.run(go())


def fails(url: str, environ: Mapping[str, str] | None = None, **options: object) -> SampleError:
    result = fetch(url, environ, **options)
    assert isinstance(result, SampleError), f"{url} was fetched"
    return result


@pytest.fixture(scope="module")
def origin() -> Iterator[HostileServer]:
    with HostileServer() as server:
        yield server


@pytest.fixture(scope="module")
def tls_origin(ca: LocalCA) -> Iterator[TlsHostileServer]:
    with TlsHostileServer(ca.server_context()) as server:
        yield server


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory, tls_origin: TlsHostileServer) -> Iterator[Tinyproxy]:
    """tinyproxy without credentials; CONNECT only to the TLS origin's port."""
    try:
        server = Tinyproxy(tmp_path_factory.mktemp("tinyproxy"), connect_ports=[tls_origin.port])
    except RuntimeError as exc:
        pytest.fail(str(exc))
    with server:
        yield server


@pytest.fixture(scope="module")
def auth_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tinyproxy]:
    """tinyproxy that wants Basic credentials."""
    with Tinyproxy(tmp_path_factory.mktemp("tinyproxy-auth"), credentials=(USER, PASSWORD)) as server:
        yield server


def _vias(server: HostileServer, path: str) -> list[str | None]:
    return [headers.get("Via") for p, headers in server.request_headers if p == path]


def test_http_goes_to_the_proxy_in_absolute_form(proxy: Tinyproxy, origin: HostileServer) -> None:
    url = f"{origin.base_url}/ok.jpg?through=option"
    result = fetch(url, proxy=proxy.url)
    assert result.status == 200 and result.body[:2] == b"\xff\xd8"
    assert f"GET {url} HTTP/1.1" in proxy.requests()
    assert VIA_NAME in (_vias(origin, "/ok.jpg")[-1] or "")


def test_https_goes_through_a_connect_tunnel_with_sni_for_the_target(
    proxy: Tinyproxy, tls_origin: TlsHostileServer, bundle: str
) -> None:
    before = tls_origin.connections
    url = f"https://localhost:{tls_origin.port}/ok.jpg"
    assert fetch(url, proxy=proxy.url, ca_bundle=bundle).status == 200
    assert f"CONNECT localhost:{tls_origin.port} HTTP/1.1" in proxy.requests()
    assert tls_origin.sni_names[-1] == "localhost"  # TLS end to end with the target, not the proxy
    assert tls_origin.connections == before + 1
    # Inside the tunnel the origin gets an ordinary request: tinyproxy added nothing to it.
    assert _vias(tls_origin, "/ok.jpg")[-1] is None


def test_certificates_are_checked_through_the_tunnel(proxy: Tinyproxy, tls_origin: TlsHostileServer) -> None:
    exc = fails(f"{tls_origin.base_url}/ok.jpg", proxy=proxy.url)  # the test CA is not trusted here
    assert exc.error_class is ErrorClass.TLS_ERROR and "127.0.0.1" in exc.message


def test_environment_variables_choose_the_proxy(
    proxy: Tinyproxy, origin: HostileServer, tls_origin: TlsHostileServer, bundle: str
) -> None:
    for environ in ({"HTTP_PROXY": proxy.url, "HTTPS_PROXY": proxy.url}, {"all_proxy": proxy.url}):
        plain = f"{origin.base_url}/ok.jpg?env={len(environ)}{next(iter(environ))}"
        assert fetch(plain, environ).status == 200
        assert f"GET {plain} HTTP/1.1" in proxy.requests()
        secure = f"{tls_origin.base_url}/ok.jpg"
        connects = proxy.requests().count(f"CONNECT 127.0.0.1:{tls_origin.port} HTTP/1.1")
        assert fetch(secure, environ, ca_bundle=bundle).status == 200
        assert proxy.requests().count(f"CONNECT 127.0.0.1:{tls_origin.port} HTTP/1.1") == connects + 1


def test_the_process_environment_is_read(
    proxy: Tinyproxy, origin: HostileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("http_proxy", proxy.url)
    url = f"{origin.base_url}/ok.jpg?env=process"

    async def go() -> object:
        async with Fetcher(FetchOptions(allow_networks=ALLOW, retries=0)) as fetcher:
            return await fetcher.fetch(url)

    assert asyncio.run(go()).status == 200
    assert f"GET {url} HTTP/1.1" in proxy.requests()


def test_no_proxy_hosts_are_fetched_directly(
    proxy: Tinyproxy, origin: HostileServer, tls_origin: TlsHostileServer, bundle: str
) -> None:
    for no_proxy in ("127.0.0.1", "localhost,127.0.0.0/8", "*"):
        environ = {"HTTP_PROXY": proxy.url, "HTTPS_PROXY": proxy.url, "NO_PROXY": no_proxy}
        url = f"{origin.base_url}/ok.jpg?direct={no_proxy}"
        assert fetch(url, environ).status == 200
        assert _vias(origin, "/ok.jpg")[-1] is None
        assert fetch(f"{tls_origin.base_url}/ok.jpg", environ, ca_bundle=bundle).status == 200
    assert not any("direct=" in line for line in proxy.requests())


def test_proxy_none_overrides_the_environment(origin: HostileServer) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    assert fetch(f"{origin.base_url}/ok.jpg", {"HTTP_PROXY": dead}, proxy="none").status == 200
    exc = fails(f"{origin.base_url}/ok.jpg", {"HTTP_PROXY": dead})
    assert exc.error_class is ErrorClass.PROXY_ERROR


def test_credentials_from_the_proxy_url(
    auth_proxy: Tinyproxy, origin: HostileServer, tls_origin: TlsHostileServer, bundle: str
) -> None:
    good = auth_proxy.url_with(USER, PASSWORD)
    assert fetch(f"{origin.base_url}/ok.jpg?auth=good", proxy=good).status == 200
    assert fetch(f"{tls_origin.base_url}/ok.jpg", proxy=good, ca_bundle=bundle).status == 200
    for given in (auth_proxy.url, auth_proxy.url_with(USER, "wrong-password")):
        for url in (f"{origin.base_url}/ok.jpg?auth=bad", f"{tls_origin.base_url}/ok.jpg"):
            exc = fails(url, proxy=given, ca_bundle=bundle)
            assert exc.error_class is ErrorClass.PROXY_ERROR, exc.message
            # 407, or 401 from tinyproxy for wrong credentials; either way the proxy is named
            assert auth_proxy.url in exc.message and "credentials in the proxy URL" in exc.message
            assert "wrong-password" not in exc.message and USER not in exc.message
    assert not any("auth=bad" in p for p, _ in origin.request_headers)


def test_a_dead_proxy_is_a_proxy_error_naming_it(origin: HostileServer, tls_origin: TlsHostileServer) -> None:
    port = free_port()  # nothing listens there
    for url in (f"{origin.base_url}/ok.jpg", f"{tls_origin.base_url}/ok.jpg"):
        exc = fails(url, proxy=f"http://{USER}:{PASSWORD}@127.0.0.1:{port}", retries=1)
        assert exc.error_class is ErrorClass.PROXY_ERROR
        assert f"http://127.0.0.1:{port}" in exc.message and PASSWORD not in exc.message


def test_a_refused_connect_is_a_proxy_error(proxy: Tinyproxy, origin: HostileServer) -> None:
    # tinyproxy only allows CONNECT to the TLS origin's port (ConnectPort).
    exc = fails(f"https://127.0.0.1:{origin.port}/ok.jpg", proxy=proxy.url)
    assert exc.error_class is ErrorClass.PROXY_ERROR
    assert proxy.url in exc.message and "403" in exc.message and f"127.0.0.1:{origin.port}" in exc.message


def test_refused_targets_are_refused_before_the_proxy_is_asked(
    proxy: Tinyproxy, origin: HostileServer, tmp_path: Path
) -> None:
    port = origin.port
    urls = [
        f"http://127.0.0.2:{port}/ok.jpg",
        f"https://127.0.0.2:{port}/ok.jpg",
        f"http://private.test:{port}/ok.jpg",  # resolves to 127.0.0.2
        f"https://private.test:{port}/ok.jpg",
    ]
    for url in urls:
        exc = fails(url, proxy=proxy.url)
        assert exc.error_class is ErrorClass.ADDRESS_REFUSED, (url, exc.message)
    # A redirect to a refused target: the first hop goes through the proxy, the second never does.
    hop = fails(f"{origin.base_url}/redirect?to=http://127.0.0.2:{port}/ok.jpg%3Fhop", proxy=proxy.url)
    assert hop.error_class is ErrorClass.ADDRESS_REFUSED
    seen = proxy.requests()
    assert any("/redirect?to=" in line for line in seen)
    assert not any("127.0.0.2" in line.split("?")[0] or "private.test" in line for line in seen), seen
