"""Opt-outs and block lists in the download job on real Spark, counted at a loopback site server."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.image import process_image
from testkit.site_server import ROBOTS, TDMREP, SiteServer, image_for
from tests.stages import download as run

# path -> the error class its row must end with (None: stored)
CASES = {
    "/ok/1.jpg": None,
    "/ok/2.jpg": None,
    "/ok/3.jpg": None,
    "/private/a.jpg": "robots_disallowed",  # robots.txt, our group
    "/ok/4.jpg": None,
    "/reserved/a.jpg": "tdm_reserved",  # tdmrep.json
    "/tdm/a.jpg": "tdm_reserved",  # tdm-reservation header
    "/noml/a.jpg": "opted_out",  # X-Robots-Tag: noml
    "/blocked/url.jpg": "blocked_url",
    "/sha/a.jpg": "blocked_sha256",
    "/phash/a.jpg": "blocked_phash",
    "/ok/5.jpg": None,
}
NEVER_REQUESTED = ("/private/a.jpg", "/reserved/a.jpg", "/blocked/url.jpg")


@pytest.fixture
def site() -> Iterator[SiteServer]:
    robots = b"User-agent: *\nDisallow: /\n\nUser-agent: corpusforge\nDisallow: /private/\n"
    tdmrep = json.dumps([{"location": "/reserved/", "tdm-reservation": 1}]).encode()
    with SiteServer(robots, tdmrep) as server:
        yield server


def test_opt_outs_and_block_lists(spark, site: SiteServer, download_options, tmp_path: Path) -> None:
    urls = [site.url(path) for path in CASES] + [f"http://localhost:{site.port}/ok/6.jpg"]
    expected = [*CASES.values(), "blocked_domain"]
    listing = tmp_path / "urls.parquet"
    pq.write_table(pa.table({"url": urls, "caption": [f"image {i}" for i in range(len(urls))]}), listing)
    options = download_options(listing, "--samples-per-shard", "2")
    # The pHash the job stores for /phash/a.jpg, one bit off: found within --block-phash-distance 1.
    stored = process_image(image_for("/phash/a.jpg"), options.image).phash
    blocks = tmp_path / "blocks.txt"
    blocks.write_text(
        "# a rights holder's requests\n"
        f"url:{site.url('/blocked/url.jpg')}\n"
        "domain:localhost\n"
        f"sha256:{hashlib.sha256(image_for('/sha/a.jpg')).hexdigest()}\n"
        f"phash:{stored ^ 1:016x}\n"
    )
    options = download_options(
        listing, "--samples-per-shard", "2", "--block-list", str(blocks), "--block-phash-distance", "1"
    )
    summary = run(spark, options)

    tables = [pq.read_table(f) for f in sorted((tmp_path / "dataset" / "raw").glob("*.parquet"))]
    rows = sorted(pa.concat_tables(tables).to_pylist(), key=lambda r: r["row_index"])
    assert [r["error_class"] for r in rows] == expected, [r["error_message"] for r in rows]
    statuses = ["success" if e is None else "failed" for e in expected]
    assert [r["status"] for r in rows] == statuses
    counts = Counter(e for e in expected if e)
    assert {k: summary["errors"].get(k) for k in counts} == dict(counts)
    # Nothing was asked for what robots.txt, tdmrep.json or a URL or domain entry forbids, and
    # the blocked domain saw no request at all; what is blocked by its bytes had to be fetched.
    assert all(site.requests[p] == 0 for p in NEVER_REQUESTED)
    assert {host for _, host, _ in site.log} == {"127.0.0.1"}
    assert site.requests["/sha/a.jpg"] == site.requests["/phash/a.jpg"] == 1
    # robots.txt and tdmrep.json: once per Python worker process, which serves several tasks.
    # How many workers Spark forks for 7 shards on local[2] depends on the machine's load (4 were
    # seen on a loaded CI machine), so the bound here is "at most one per task"; the cache per
    # process and its TTL are pinned down by tests/fetch/test_opt_outs.py.
    assert summary["shards"] == 7
    assert 1 <= site.requests[ROBOTS] == site.requests[TDMREP] <= summary["shards"], dict(site.requests)
