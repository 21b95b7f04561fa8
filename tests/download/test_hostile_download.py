"""The whole download job against the hostile server, over http and https, and against https
servers with bad certificates: every attack is a failed row with its class, none is stored."""

from __future__ import annotations

import tarfile
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from testkit.hostile import HostileServer
from testkit.tls import LocalCA, StallServer, TlsHostileServer, self_signed_context, untrusted_context
from tests.stages import download as run

EXPECTED = {
    "/endless_chunked": "too_large",
    "/endless_close": "too_large",
    "/content_length_lie": "too_large",
    "/gzip_bomb": "too_large",
    "/deflate_bomb": "too_large",
    "/double_gzip_bomb": "too_large",
    "/header_flood": "protocol_error",
    "/huge_header": "protocol_error",
    "/slow_drip": "timeout",
    "/slow_headers": "timeout",
    "/png_bomb": "image_too_large",
    "/jpeg_bomb": "image_too_large",
    "/html_as_jpeg": "undecodable",
    "/svg_as_jpeg": "undecodable",
    "/svg": "bad_content_type",
    "/redirect_loop": "too_many_redirects",
    "/redirect?to=http://127.0.0.2:{port}/ok.jpg": "address_refused",
    "/redirect?to=http://[::1]:{port}/ok.jpg": "address_refused",
    "/redirect?to=http://0x7f.2:{port}/ok.jpg": "address_refused",
    "/redirect?to=http://2130706433:{port}/ok.jpg": "invalid_url",
    "/ok.jpg": None,
}
# The same attacks over TLS (the test CA passed with --ca-bundle) end the same way.
TLS_EXPECTED = {
    "/gzip_bomb": "too_large",
    "/redirect?to=http://127.0.0.2:{port}/ok.jpg": "address_refused",
    "/ok.jpg": None,
}
# https servers whose certificate or handshake is bad: each row is a tls_error, no request sent.
BAD_TLS = ("expired", "self_signed", "wrong_host", "untrusted_ca", "stalled_handshake", "plain_http_port")


def _bad_tls_servers(ca: LocalCA, plain: HostileServer, stack: ExitStack) -> list[str]:
    """The base URL of one server per :data:`BAD_TLS` case, each started on ``stack``."""
    contexts = {
        "expired": ca.server_context(expired=True),
        "self_signed": self_signed_context(),
        "wrong_host": ca.server_context("images.example.org"),
        "untrusted_ca": untrusted_context(),
    }
    bases = []
    for case in BAD_TLS:
        if case in contexts:
            bases.append(stack.enter_context(TlsHostileServer(contexts[case])).base_url)
        elif case == "stalled_handshake":
            bases.append(stack.enter_context(StallServer()).base_url)
        else:
            bases.append(f"https://127.0.0.1:{plain.port}")
    return bases


def test_hostile_urls_fail_with_their_class_and_nothing_of_them_is_stored(
    spark, download_options, tmp_path: Path
) -> None:
    ca = LocalCA()
    bundle = ca.write_bundle(tmp_path / "ca.pem")
    with ExitStack() as stack:
        server = stack.enter_context(HostileServer(drip_seconds=0.2, drip_limit=30.0))
        tls_server = stack.enter_context(TlsHostileServer(ca.server_context(), drip_limit=30.0))
        bad_tls = _bad_tls_servers(ca, server, stack)
        urls = [server.base_url + p.format(port=server.port) for p in EXPECTED]
        urls += [tls_server.base_url + p.format(port=server.port) for p in TLS_EXPECTED]
        urls += [base + "/ok.jpg" for base in bad_tls]
        # The control image twice (two captions), so successes are more than one lucky row.
        captions = [f"attack {i}" for i in range(len(urls))] + ["a control image again"]
        urls.append(server.base_url + "/ok.jpg")
        pq.write_table(pa.table({"url": urls, "caption": captions}), tmp_path / "hostile.parquet")
        options = download_options(
            tmp_path / "hostile.parquet",
            "--ca-bundle",
            str(bundle),
            "--max-bytes",
            str(2 * 1024 * 1024),
            "--retries",
            "0",
            # The bomb routes stream from Python threads of this process and compete with the
            # six hops of /redirect_loop for the GIL; 2 s for all of them flaked under CI load.
            # The drip routes still run far past 6 s (drip_limit 30 s), so they still time out.
            "--timeout",
            "6",
            "--samples-per-shard",
            "11",
        )
        summary = run(spark, options)
        ok_requests = server.requests["/ok.jpg"]
        tls_requests = dict(tls_server.requests)

    dataset = tmp_path / "dataset"
    rows = [r for f in sorted((dataset / "raw").glob("*.parquet")) for r in pq.read_table(f).to_pylist()]
    assert sorted(r["row_index"] for r in rows) == list(range(len(urls)))
    expected = [*EXPECTED.values(), *TLS_EXPECTED.values(), *(["tls_error"] * len(BAD_TLS)), None]
    for row in sorted(rows, key=lambda r: r["row_index"]):
        want = expected[row["row_index"]]
        assert row["error_class"] == want, (row["url"], row["error_message"])
        assert row["status"] == ("success" if want is None else "failed")
    # The refused redirect targets were never fetched: only the two control rows reached /ok.jpg,
    # and over TLS only the https control row (no bad-certificate server was sent a request).
    assert ok_requests == 2
    # (and each executor process that reached it asked for its robots.txt and tdmrep.json once)
    site_files = {path: tls_requests.pop(path, 0) for path in ("/robots.txt", "/.well-known/tdmrep.json")}
    assert tls_requests == {"/gzip_bomb": 1, "/redirect": 1, "/ok.jpg": 1}
    assert site_files["/robots.txt"] == site_files["/.well-known/tdmrep.json"] >= 1
    tls_errors = [r["error_message"] for r in rows if r["error_class"] == "tls_error"]
    assert len(tls_errors) == len(BAD_TLS) and all("127.0.0.1" in m for m in tls_errors), tls_errors
    assert any("stalled" in m for m in tls_errors) and any("expired" in m for m in tls_errors)
    stored: Counter[str] = Counter()
    for path in (dataset / "raw").glob("*.tar"):
        with tarfile.open(path) as tar:
            stored.update(name.split(".")[0] for name in tar.getnames())
    assert set(stored) == {r["uid"] for r in rows if r["status"] == "success"}
    assert len(stored) == 3 and set(stored.values()) == {3}  # image, caption, metadata
    assert summary["successes"] == 3 and summary["failed"] == len(urls) - 3
    assert summary["errors"]["tls_error"] == len(BAD_TLS)
    assert not list((dataset / "raw").glob("*.tmp.*"))
