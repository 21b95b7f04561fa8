"""The job-wide per-host budget on real Spark, measured at the server: in flight and per second."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from testkit.site_server import SiteServer
from tests.stages import download as run

TASKS = 2  # local[2]
JOB_CAP = 2  # --host-concurrency: one each, where the per-task cap alone would allow 2 x 8
RPS = 8.0


@pytest.fixture
def site() -> Iterator[SiteServer]:
    with SiteServer(slow_seconds=0.2) as server:
        yield server


def most_in_any_second(times: list[float]) -> int:
    """The most requests that arrived within one second of each other."""
    ordered = sorted(times)
    most, start = 0, 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


def test_the_hosts_budget_holds_for_the_whole_job(
    spark, site: SiteServer, download_options, tmp_path: Path
) -> None:
    urls = [site.url(f"/slow/{i}.jpg") for i in range(24)]
    listing = tmp_path / "urls.parquet"
    pq.write_table(pa.table({"url": urls, "caption": [f"image {i}" for i in range(len(urls))]}), listing)
    options = download_options(
        listing,
        "--samples-per-shard", "6",  # 4 shards: every one holds the host
        "--concurrent-tasks", str(TASKS),
        "--host-concurrency", str(JOB_CAP),
        "--per-host-concurrency", "8",
        "--per-host-rps", str(RPS),
        "--timeout", "10",
    )  # fmt: skip
    summary = run(spark, options)
    assert summary["successes"] == len(urls)
    # Measured at the server, robots.txt and tdmrep.json requests included.
    assert site.max_in_flight["127.0.0.1"] <= JOB_CAP
    times = site.times()
    assert len(times) >= len(urls) + 2
    # Each executor process starts a request to the host every TASKS / RPS seconds at most (its
    # pacing outlives its tasks): in one second RPS of them, plus slack for one more each.
    assert most_in_any_second(times) <= RPS + TASKS, sorted(times)
    assert max(times) - min(times) >= (len(times) - TASKS) / RPS - 0.1
