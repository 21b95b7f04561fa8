"""The download job through a real proxy (tinyproxy): ``--proxy`` and ``--ca-bundle`` reach the
executors, http and https rows go through the proxy, a refused target never reaches it."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from testkit.hostile import HostileServer
from testkit.proxy import VIA_NAME, Tinyproxy
from testkit.tls import LocalCA, TlsHostileServer
from tests.stages import download as run


def test_download_through_a_proxy(spark, download_options, tmp_path: Path) -> None:
    ca = LocalCA()
    with ExitStack() as stack:
        origin = stack.enter_context(HostileServer())
        tls_origin = stack.enter_context(TlsHostileServer(ca.server_context()))
        try:
            proxy = stack.enter_context(Tinyproxy(tmp_path / "tinyproxy", credentials=("user", "pass")))
        except RuntimeError as exc:
            pytest.fail(str(exc))
        urls = [
            f"{origin.base_url}/ok.jpg",
            f"{tls_origin.base_url}/ok.jpg",
            f"http://127.0.0.2:{origin.port}/ok.jpg",  # outside --allow-network 127.0.0.1/32
        ]
        table = pa.table({"url": urls, "caption": [f"row {i}" for i in range(len(urls))]})
        pq.write_table(table, tmp_path / "urls.parquet")
        options = download_options(
            tmp_path / "urls.parquet",
            "--proxy",
            proxy.url_with("user", "pass"),
            "--ca-bundle",
            str(ca.write_bundle(tmp_path / "ca.pem")),
            "--retries",
            "0",
        )
        summary = run(spark, options)
        seen = proxy.requests()
        vias = [headers.get("Via") for path, headers in origin.request_headers if path == "/ok.jpg"]

    rows = pq.read_table(tmp_path / "dataset" / "raw" / "00000.parquet").to_pylist()
    outcome = {r["row_index"]: (r["status"], r["error_class"]) for r in rows}
    assert outcome == {0: ("success", None), 1: ("success", None), 2: ("failed", "address_refused")}
    assert summary["successes"] == 2
    assert f"GET {urls[0]} HTTP/1.1" in seen and f"CONNECT 127.0.0.1:{tls_origin.port} HTTP/1.1" in seen
    # The rest asked the http origin for its site files (tinyproxy logs a connection's first request).
    images = (f"GET {urls[0]} HTTP/1.1", f"CONNECT 127.0.0.1:{tls_origin.port} HTTP/1.1")
    site_files = [f"GET {origin.base_url}{p} HTTP/1.1" for p in ("/robots.txt", "/.well-known/tdmrep.json")]
    assert all(line in site_files for line in seen if line not in images), seen
    assert not any("127.0.0.2" in line for line in seen)  # nothing for 127.0.0.2
    assert len(vias) == 1 and VIA_NAME in (vias[0] or "")
