"""The fetcher over TLS against real servers on 127.0.0.1 with a local CA (``trustme``).

Verification is on by default; the CA is trusted through ``--ca-bundle`` or ``SSL_CERT_FILE``;
each bad certificate, a plain-HTTP server on the https port and a handshake that never gets an
answer end as ``tls_error`` naming the host and the reason; keep-alive and SNI are checked at
the server.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.errors import ErrorClass, SampleError, UserInputError
from pipeline.fetch import Fetcher, FetchOptions
from pipeline.fetch import tls as fetch_tls
from testkit.hostile import HostileServer
from testkit.tls import LocalCA, StallServer, TlsHostileServer, self_signed_context, untrusted_context

ALLOW = ("127.0.0.1/32",)


def fetch_all(urls: list[str], **options: object) -> list[object]:
    """Fetch ``urls`` one after another with one fetcher; each result or SampleError."""
    options = {"allow_networks": ALLOW, "total_timeout": 5.0, "retries": 0, "proxy": "none", **options}

    def localhost(host: str, port: int, family: int) -> list[tuple]:
        assert host == "localhost", host  # no other name is looked up here
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    async def go() -> list[object]:
        results: list[object] = []
        async with Fetcher(FetchOptions(**options), getaddrinfo=localhost) as fetcher:
            for url in urls:
                try:
                    results.append(await fetcher.fetch(url))
                except SampleError as exc:
                    results.append(exc)
        return results

    return asyncio.run(go())


def fetch(url: str, **options: object) -> object:
    return fetch_all([url], **options)[0]


def fails(url: str, **options: object) -> SampleError:
    result = fetch(url, **options)
    assert isinstance(result, SampleError), f"{url} was fetched"
    return result


@pytest.fixture(scope="module")
def tls_server(ca: LocalCA) -> Iterator[TlsHostileServer]:
    with TlsHostileServer(ca.server_context(), drip_seconds=0.2, drip_limit=10.0) as server:
        yield server


def test_https_is_verified_against_the_ca_bundle(tls_server: TlsHostileServer, bundle: str) -> None:
    result = fetch(tls_server.base_url + "/ok.jpg", ca_bundle=bundle)
    assert result.status == 200 and result.body[:2] == b"\xff\xd8"
    assert result.final_url.startswith("https://127.0.0.1:")


def test_verification_is_on_by_default(tls_server: TlsHostileServer) -> None:
    # The system store does not know the test CA.
    before = tls_server.requests["/ok.jpg"]
    exc = fails(tls_server.base_url + "/ok.jpg")
    assert exc.error_class is ErrorClass.TLS_ERROR
    assert "127.0.0.1" in exc.message and "unable to get local issuer certificate" in exc.message
    assert tls_server.requests["/ok.jpg"] == before  # no request was sent


def test_ssl_cert_file_is_honoured_as_python_does(
    tls_server: TlsHostileServer, bundle: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", bundle)
    assert fetch(tls_server.base_url + "/ok.jpg").status == 200


def test_keep_alive_over_tls_reuses_one_connection(tls_server: TlsHostileServer, bundle: str) -> None:
    before = tls_server.connections
    results = fetch_all([f"{tls_server.base_url}/ok.jpg?n={i}" for i in range(5)], ca_bundle=bundle)
    assert all(r.status == 200 for r in results)
    assert tls_server.connections - before == 1  # five requests, one TCP connection, one handshake


def test_sni_names_the_host_and_the_certificate_is_checked_for_it(
    tls_server: TlsHostileServer, bundle: str
) -> None:
    url = f"https://localhost:{tls_server.port}/ok.jpg"
    assert fetch(url, ca_bundle=bundle).status == 200
    assert tls_server.sni_names[-1] == "localhost"
    fetch(tls_server.base_url + "/ok.jpg", ca_bundle=bundle)
    assert tls_server.sni_names[-1] is None  # an IP address is never sent as SNI


def test_tls_responses_keep_their_caps(tls_server: TlsHostileServer, bundle: str) -> None:
    big = fails(tls_server.base_url + "/gzip_bomb", ca_bundle=bundle, max_bytes=2 * 1024 * 1024)
    assert big.error_class is ErrorClass.TOO_LARGE
    slow = fails(tls_server.base_url + "/slow_headers", ca_bundle=bundle, total_timeout=1.0)
    assert slow.error_class is ErrorClass.TIMEOUT


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("expired", "certificate has expired"),
        ("self_signed", "self-signed certificate"),
        ("wrong_host", "IP address mismatch"),
        ("untrusted_ca", "unable to get local issuer certificate"),
    ],
)
def test_bad_certificates_are_tls_errors_naming_host_and_reason(
    ca: LocalCA, bundle: str, case: str, reason: str
) -> None:
    context = {
        "expired": lambda: ca.server_context(expired=True),
        "self_signed": self_signed_context,
        "wrong_host": lambda: ca.server_context("images.example.org"),
        "untrusted_ca": untrusted_context,
    }[case]()
    with TlsHostileServer(context) as server:
        exc = fails(server.base_url + "/ok.jpg", ca_bundle=bundle, retries=2)
        assert exc.error_class is ErrorClass.TLS_ERROR
        assert "127.0.0.1" in exc.message and reason in exc.message.replace("self signed", "self-signed")
        assert server.connections == 1  # a refused certificate is not retried
        assert not server.requests  # and no request was sent
        if case == "wrong_host":
            by_name = fails(f"https://localhost:{server.port}/ok.jpg", ca_bundle=bundle)
            assert by_name.error_class is ErrorClass.TLS_ERROR
            assert "localhost" in by_name.message and "Hostname mismatch" in by_name.message


def test_ignore_ssl_certificate_fetches_anyway_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    fetch_tls._context.cache_clear()  # the warning is logged when the context is built
    with TlsHostileServer(self_signed_context()) as server, caplog.at_level(logging.WARNING):
        assert fetch(server.base_url + "/ok.jpg", ignore_ssl_certificate=True).status == 200
    assert any("NOT verified" in r.getMessage() for r in caplog.records)


def test_a_stalled_handshake_ends_as_tls_error_within_the_connect_timeout() -> None:
    with StallServer() as server:
        exc = fails(server.base_url + "/ok.jpg", connect_timeout=0.5, total_timeout=30.0, retries=1)
        accepted = server.accepted
    assert exc.error_class is ErrorClass.TLS_ERROR
    assert "127.0.0.1" in exc.message and "stalled" in exc.message and "0.5s" in exc.message
    assert accepted == 2  # retried once, like a connect timeout


def test_https_to_a_plain_http_port_is_a_tls_error() -> None:
    with HostileServer() as server:
        exc = fails(f"https://127.0.0.1:{server.port}/ok.jpg")
    assert exc.error_class is ErrorClass.TLS_ERROR and "127.0.0.1" in exc.message


def test_bad_ca_bundle_and_contradicting_flags_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="no such file"):
        FetchOptions(ca_bundle=str(tmp_path / "missing.pem")).check_environment()
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(UserInputError, match="junk.pem"):
        FetchOptions(ca_bundle=str(junk)).check_environment()
    with pytest.raises(UserInputError, match="contradict"):
        FetchOptions(ca_bundle=str(junk), ignore_ssl_certificate=True)
