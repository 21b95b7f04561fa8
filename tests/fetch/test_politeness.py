"""Per-host gates: the job-wide budget's share, the request rate, and backoff after 429s.

Times are only ever checked from below (a loaded machine makes gaps longer, never shorter).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

from pipeline.fetch import Fetcher, FetchOptions
from pipeline.fetch.client import FetcherState
from pipeline.fetch.host_options import OptOutOptions, PolitenessOptions
from pipeline.fetch.politeness import (
    MAX_ADAPTIVE_INTERVAL,
    HostGate,
    HostPace,
    HostShares,
    host_of,
    task_limits,
)
from pipeline.fetch.site_rules import SiteRulesCache
from testkit.site_server import SiteServer

BASE = 0.2  # --backoff-base of these tests: the first adaptive interval


@pytest.fixture(scope="module")
def site_server() -> Iterator[SiteServer]:
    with SiteServer(slow_seconds=0.2) as server:
        yield server


@pytest.fixture
def site(site_server: SiteServer) -> SiteServer:
    return site_server.reset()


def stub(host: str, port: int, family: int) -> list[tuple]:
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]


def run(urls: list[str], state: FetcherState | None = None, own_hosts=(), **options: object):
    """Fetch ``urls`` at once; return the results and the fetcher (for its gates)."""
    options = {"allow_networks": ("127.0.0.1/32",), "backoff_base": BASE, "proxy": "none", **options}

    async def go():
        async with Fetcher(FetchOptions(**options), getaddrinfo=stub, state=state, own_hosts=own_hosts) as f:
            return await asyncio.gather(*(f.fetch(u) for u in urls)), f

    return asyncio.run(go())


def test_task_limits_share_the_job_budget() -> None:
    assert task_limits(share=1, per_task_cap=8, job_cap=0, job_rps=0) == (8, 0.0)  # no job-wide budget
    assert task_limits(share=4, per_task_cap=8, job_cap=16, job_rps=10) == (4, 0.4)
    assert task_limits(share=1, per_task_cap=8, job_cap=16, job_rps=10) == (8, 0.1)  # per-task cap holds
    assert task_limits(share=32, per_task_cap=8, job_cap=16, job_rps=0) == (1, 0.0)  # at least one each


def test_shares_come_from_the_spread_and_the_tasks() -> None:
    shares = HostShares(tasks=4, spread={"wide.test": 10, "two.test": 2})
    share = shares.for_task(["wide.test", "two.test", "mine.test"])
    assert [share(h) for h in ("wide.test", "two.test", "mine.test")] == [4, 2, 1]
    assert share("redirected.test") == 4  # not in this task's rows: any task may reach it
    assert HostShares().for_task(["a.test"])("b.test") == 1  # one task: the whole budget
    assert host_of("http://Bücher.test:8080/a.jpg") == "xn--bcher-kva.test"
    assert host_of("not a url") == ""


def test_the_adaptive_interval_doubles_and_recovers_gradually() -> None:
    gate = HostGate(cap=4, clock=lambda: 0.0)
    gate.throttled(BASE)
    assert gate.interval == BASE
    gate.throttled(BASE)
    gate.throttled(BASE)
    assert gate.interval == 4 * BASE
    for _ in range(10):
        gate.throttled(BASE)
    assert gate.interval == MAX_ADAPTIVE_INTERVAL
    steps = 0
    while gate.interval > 0:
        before = gate.interval
        gate.answered()
        assert gate.interval < before
        steps += 1
    assert steps > 20  # gradually, not at once
    paced = HostGate(cap=4, pace=HostPace(0.5), clock=lambda: 0.0)  # a configured rate is the floor
    paced.throttled(BASE)
    assert paced.interval == 1.0
    paced.pace.configure(0.25)  # the next task's rate: the raised interval stays
    assert paced.interval == 1.0
    for _ in range(100):
        paced.answered()
    assert paced.interval == 0.25
    paced.pace.configure(0.5)
    assert paced.interval == 0.5


def test_a_429_without_retry_after_slows_the_host_down(site: SiteServer) -> None:
    urls = [site.url("/429/first.jpg")] + [site.url(f"/img/{i}.jpg") for i in range(6)]
    results, fetcher = run(urls, per_host_concurrency=1, retries=2)
    assert all(r.status == 200 for r in results)
    times = site.times()
    paths = [p for _, _, p in site.log]
    throttled = paths.index("/429/first.jpg")  # its first request got the 429
    gaps = [b - a for a, b in zip(times[throttled:], times[throttled + 1 :], strict=False)]
    # The next request to the host waited at least the first adaptive interval, and each one after
    # it at least the interval in force then (which comes down by 10 % an answer).
    assert gaps[0] >= BASE - 0.01, gaps
    assert gaps[1] >= BASE * 0.9 - 0.01, gaps
    pace = fetcher.state.paces["127.0.0.1"]  # kept by the process for its next task
    assert 0 < pace.interval < BASE  # recovering


def test_a_429_with_retry_after_pauses_the_whole_host(site: SiteServer) -> None:
    urls = [site.url("/429ra/first.jpg"), site.url("/img/other.jpg")]
    results, _ = run(urls, per_host_concurrency=1, retries=1)
    assert [r.status for r in results] == [200, 200]
    times = dict(zip((p for _, _, p in site.log), site.times(), strict=True))
    first_429 = [t for t, _, p in site.log if p == "/429ra/first.jpg"][0]
    assert times["/img/other.jpg"] - first_429 >= 1.0 - 0.01  # another URL of the host waited too


def test_requests_per_second_are_paced_at_the_host(site: SiteServer) -> None:
    politeness = PolitenessOptions(per_host_rps=20.0)
    urls = [site.url(f"/img/{i}.jpg") for i in range(20)]
    results, _ = run(urls, politeness=politeness, per_host_concurrency=8)
    assert all(r.status == 200 for r in results)
    times = site.times()
    assert len(times) == 22  # robots.txt and tdmrep.json count in the rate too
    assert times[-1] - times[0] >= 21 / 20.0 - 0.02


def test_the_job_cap_is_shared_among_the_tasks_that_reach_a_host(site: SiteServer) -> None:
    # This task is one of 4 that hold wide.test's rows, and alone with mine.test's.
    state = FetcherState(
        SiteRulesCache(3600.0), shares=HostShares(tasks=4, spread={"wide.test": 9, "mine.test": 1})
    )
    politeness = PolitenessOptions(host_concurrency=4)
    port = site.port
    urls = [f"http://{h}:{port}/slow/{i}.jpg" for h in ("wide.test", "mine.test") for i in range(5)]
    results, fetcher = run(
        urls,
        state=state,
        own_hosts=["wide.test", "mine.test"],
        politeness=politeness,
        per_host_concurrency=8,
        opt_outs=OptOutOptions(robots_txt=False, tdmrep="header"),
    )
    assert all(r.status == 200 for r in results)
    # wide.test: 4 // 4 tasks; mine.test: the whole job cap, below the per-task cap of 8.
    assert {host: gate.cap for host, gate in fetcher._gates.items()} == {"wide.test": 1, "mine.test": 4}
    assert site.max_in_flight["wide.test"] == 1
    assert site.max_in_flight["mine.test"] <= 4
