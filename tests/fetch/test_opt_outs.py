"""robots.txt, TDMRep, noml and block lists through the fetcher, counted at a real loopback server."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.errors import ErrorClass, SampleError
from pipeline.fetch import Fetcher, FetchOptions
from pipeline.fetch.client import FetcherState
from pipeline.fetch.host_options import OptOutOptions
from pipeline.fetch.robots_txt import PARSE_LIMIT
from pipeline.fetch.site_rules import SiteRulesCache
from testkit.site_server import ROBOTS, TDMREP, SiteServer

ALLOW = ("127.0.0.1/32",)
DEFAULTS = {"allow_networks": ALLOW, "total_timeout": 5.0, "backoff_base": 0.05, "proxy": "none"}


@pytest.fixture(scope="module")
def site_server() -> Iterator[SiteServer]:
    with SiteServer() as server:
        yield server


@pytest.fixture
def site(site_server: SiteServer) -> SiteServer:
    return site_server.reset()


def stub(host: str, port: int, family: int) -> list[tuple]:
    """Every name is 127.0.0.1 (names stand for distinct hosts; nothing is really looked up)."""
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]


def outcomes(urls: list[str], state: FetcherState | None = None, **options: object) -> list[object]:
    """Fetch ``urls`` at once with one fetcher; each result's status or the failure's class."""
    options = {**DEFAULTS, **options}

    async def go() -> list[object]:
        async with Fetcher(FetchOptions(**options), getaddrinfo=stub, state=state) as fetcher:
            results = await asyncio.gather(*(fetcher.fetch(u) for u in urls), return_exceptions=True)
        return [r.error_class if isinstance(r, SampleError) else getattr(r, "status", r) for r in results]

    return asyncio.run(go())


def failure(url: str, **options: object) -> SampleError:
    options = {**DEFAULTS, **options}

    async def go() -> object:
        async with Fetcher(FetchOptions(**options), getaddrinfo=stub) as fetcher:
            return await fetcher.fetch(url)

    with pytest.raises(SampleError) as info:
        asyncio.run(go())
    return info.value


def test_robots_disallow_per_path_and_user_agent(site: SiteServer) -> None:
    site.robots = (
        b"User-agent: *\nDisallow: /\n\n"
        b"User-agent: corpusforge\nDisallow: /private/\nDisallow: /*.png.jpg$\nAllow: /private/ok/\n"
    )
    urls = [site.url(p) for p in ("/a.jpg", "/private/a.jpg", "/private/ok/a.jpg", "/x/b.png.jpg")]
    assert outcomes(urls) == [200, ErrorClass.ROBOTS_DISALLOWED, 200, ErrorClass.ROBOTS_DISALLOWED]
    assert site.requests[ROBOTS] == 1  # four URLs at once: one robots.txt request
    assert site.requests["/private/a.jpg"] == site.requests["/x/b.png.jpg"] == 0  # never requested
    message = failure(site.url("/private/a.jpg")).message
    assert "robots.txt disallows /private/a.jpg for user agent 'corpusforge' (Disallow: /private/)" in message


def test_another_agents_group_does_not_apply(site: SiteServer) -> None:
    site.robots = b"User-agent: corpus\nDisallow: /\n\nUser-agent: otherbot\nDisallow: /\n"
    assert outcomes([site.url("/a.jpg")]) == [200]


def test_concurrent_requests_wait_for_one_robots_fetch(site: SiteServer) -> None:
    site.robots = b"User-agent: *\nDisallow: /no/\n"
    site.tdmrep = b'[{"location": "/tdmno/", "tdm-reservation": 1}]'
    urls = [site.url(f"/img/{i}.jpg") for i in range(20)] + [site.url(f"/no/{i}.jpg") for i in range(5)]
    results = outcomes(urls, per_host_concurrency=4)
    assert results == [200] * 20 + [ErrorClass.ROBOTS_DISALLOWED] * 5
    assert site.requests[ROBOTS] == site.requests[TDMREP] == 1
    # The site files came first, then the images: nothing was requested before the rules were known.
    assert [p for _, _, p in site.log[:2]] == [ROBOTS, TDMREP]


def test_rules_are_cached_per_process_for_the_ttl(site: SiteServer) -> None:
    now = [1000.0]
    state = FetcherState(SiteRulesCache(ttl=60.0, clock=lambda: now[0]))
    site.robots = b"User-agent: *\nDisallow: /old/\n"
    assert outcomes([site.url("/old/a.jpg")], state) == [ErrorClass.ROBOTS_DISALLOWED]
    site.robots = b"User-agent: *\nDisallow: /new/\n"
    now[0] += 59  # another task of the same process, within the TTL: the cached rules apply
    assert outcomes([site.url("/old/b.jpg"), site.url("/new/b.jpg")], state) == [
        ErrorClass.ROBOTS_DISALLOWED,
        200,
    ]
    assert site.requests[ROBOTS] == 1
    now[0] += 2  # past the TTL: fetched again
    assert outcomes([site.url("/old/c.jpg"), site.url("/new/c.jpg")], state) == [
        200,
        ErrorClass.ROBOTS_DISALLOWED,
    ]
    assert site.requests[ROBOTS] == 2
    assert state.site_rules.loads == 2


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (404, 200),  # unavailable: no restrictions
        (403, 200),
        (410, 200),
        (500, ErrorClass.ROBOTS_UNREACHABLE),  # unreachable: nothing may be fetched
        (503, ErrorClass.ROBOTS_UNREACHABLE),
        (429, ErrorClass.ROBOTS_UNREACHABLE),
    ],
)
def test_robots_status_codes(site: SiteServer, answer: int, expected: object) -> None:
    site.robots = answer
    assert outcomes([site.url("/a.jpg"), site.url("/b.jpg")], retries=1) == [expected, expected]
    assert site.requests[ROBOTS] == (2 if answer >= 429 else 1)  # server errors retried once
    if expected is ErrorClass.ROBOTS_UNREACHABLE:
        assert site.requests["/a.jpg"] == 0
        message = failure(site.url("/a.jpg"), retries=0).message
        assert f"/robots.txt answered HTTP {answer}" in message and "RFC 9309" in message


def test_failures_are_cached_for_a_short_time_only() -> None:
    cache = SiteRulesCache(ttl=86400.0)
    assert cache.failure_ttl == 300.0 and SiteRulesCache(ttl=10.0).failure_ttl == 10.0


def test_an_unreachable_host_fails_with_the_network_class() -> None:
    # Nothing listens there: the robots.txt request fails to connect, and so does the row.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    exc = failure(f"http://127.0.0.1:{port}/a.jpg")
    assert exc.error_class is ErrorClass.CONNECT_ERROR
    assert exc.message.startswith(f"http://127.0.0.1:{port}/robots.txt unreachable: cannot connect")


def test_a_long_robots_txt_is_read_up_to_the_limit(site: SiteServer) -> None:
    padding = b"# " + b"x" * 1000 + b"\n"
    site.robots = b"User-agent: *\nDisallow: /early/\n" + padding * (PARSE_LIMIT // len(padding) + 5)
    site.robots += b"Disallow: /late/\n"
    urls = [site.url("/early/a.jpg"), site.url("/late/a.jpg")]
    assert outcomes(urls) == [ErrorClass.ROBOTS_DISALLOWED, 200]


def test_a_redirect_meets_the_target_hosts_robots(site: SiteServer) -> None:
    # other.test is the same server under another name: another origin, with its own rules.
    site.robots = b"User-agent: *\nDisallow: /private/\n"
    port = site.port
    urls = [
        site.url(f"/redirect?to=http://other.test:{port}/private/a.jpg"),
        site.url(f"/redirect?to=http://other.test:{port}/public/a.jpg"),
    ]
    assert outcomes(urls, per_host_concurrency=1) == [ErrorClass.ROBOTS_DISALLOWED, 200]
    assert site.requests[ROBOTS] == 2  # once for each origin
    assert site.requests["/private/a.jpg"] == 0 and site.requests["/public/a.jpg"] == 1


def test_tdm_header(site: SiteServer) -> None:
    urls = [site.url("/tdm/a.jpg"), site.url("/tdm0/a.jpg")]
    assert outcomes(urls) == [ErrorClass.TDM_RESERVED, 200]
    message = failure(site.url("/tdm/a.jpg")).message
    assert message == "tdm-reservation: 1 header (tdm-policy: https://rights.example/policy.json)"
    assert outcomes(urls, opt_outs=OptOutOptions(tdmrep="off")) == [200, 200]


def test_tdmrep_json_reserves_matching_paths_before_any_request(site: SiteServer) -> None:
    site.tdmrep = json.dumps(
        [
            {"location": "/reserved/free/", "tdm-reservation": 0},
            {"location": "/reserved/", "tdm-reservation": 1, "tdm-policy": "https://rights.example/p.json"},
            {"location": "/*.gif.jpg$", "tdm-reservation": 1},
            {"location": "/bad/", "tdm-reservation": 2},  # a protocol error: the rule is skipped
            {"tdm-reservation": 1},
        ]
    ).encode()
    paths = ["/reserved/a.jpg", "/reserved/free/a.jpg", "/x/a.gif.jpg", "/bad/a.jpg", "/other/a.jpg"]
    expected = [ErrorClass.TDM_RESERVED, 200, ErrorClass.TDM_RESERVED, 200, 200]
    assert outcomes([site.url(p) for p in paths]) == expected
    assert site.requests["/reserved/a.jpg"] == site.requests["/x/a.gif.jpg"] == 0
    message = failure(site.url("/reserved/a.jpg")).message
    assert "tdmrep.json reserves TDM rights on /reserved/a.jpg" in message
    assert "policy https://rights.example/p.json" in message
    # header mode: the file is not read
    before = site.requests[TDMREP]
    assert outcomes([site.url("/reserved/b.jpg")], opt_outs=OptOutOptions(tdmrep="header")) == [200]
    assert site.requests[TDMREP] == before


@pytest.mark.parametrize("body", [b"{not json", b'{"location": "/", "tdm-reservation": 1}', 500])
def test_a_broken_tdmrep_json_means_no_reservations(site: SiteServer, body: object) -> None:
    site.tdmrep = body  # type: ignore[assignment]
    assert outcomes([site.url("/a.jpg")]) == [200]


def test_noml_is_honoured_as_noai(site: SiteServer) -> None:
    assert outcomes([site.url("/noml/a.jpg")]) == [ErrorClass.OPTED_OUT]
    assert outcomes([site.url("/noml/a.jpg")], disallowed_header_directives=("noindex",)) == [200]


def test_robots_txt_off(site: SiteServer) -> None:
    site.robots = b"User-agent: *\nDisallow: /\n"
    off = OptOutOptions(robots_txt=False, tdmrep="header")
    assert outcomes([site.url("/a.jpg")], opt_outs=off) == [200]
    assert site.requests[ROBOTS] == site.requests[TDMREP] == 0


def test_blocked_urls_and_domains_are_never_contacted(site: SiteServer, tmp_path: Path) -> None:
    blocks = tmp_path / "blocks.txt"
    blocks.write_text(f"url:{site.url('/blocked.jpg')}\ndomain:blocked.test\n")
    opt_outs = OptOutOptions(block_lists=(str(blocks),))
    port = site.port
    urls = [
        site.url("/blocked.jpg"),
        f"http://img.blocked.test:{port}/a.jpg",
        site.url(f"/redirect?to=http://cdn.blocked.test:{port}/b.jpg"),
        site.url("/fine.jpg"),
    ]
    expected = [ErrorClass.BLOCKED_URL, ErrorClass.BLOCKED_DOMAIN, ErrorClass.BLOCKED_DOMAIN, 200]
    assert outcomes(urls, opt_outs=opt_outs) == expected
    hosts = {host for _, host, _ in site.log}
    assert hosts == {"127.0.0.1"}  # not even a robots.txt request went to a blocked host
    assert site.requests["/blocked.jpg"] == site.requests["/a.jpg"] == site.requests["/b.jpg"] == 0


def test_a_robots_txt_redirected_to_a_blocked_host_is_not_followed(site: SiteServer, tmp_path: Path) -> None:
    blocks = tmp_path / "blocks.txt"
    blocks.write_text("domain:blocked.test\n")
    site.robots = f"http://cdn.blocked.test:{site.port}/robots.txt"
    assert outcomes([site.url("/a.jpg")], opt_outs=OptOutOptions(block_lists=(str(blocks),))) == [200]
    assert {host for _, host, _ in site.log} == {"127.0.0.1"}  # as if there were no robots.txt
