"""A loopback HTTP server that makes up every response on the fly, for soak tests of any size.

``/KIND/N.jpg`` answers as fault ``KIND`` (see :data:`SOAK_FAULTS`), or with a small JPEG for
``ok``; nothing is stored, so a list of a million URLs costs no disk. The server listens on
several loopback addresses (127.0.0.1, 127.0.0.2, ...), each one a distinct *host* for the
client's per-host limits, and measures politeness from its own side: requests in flight per host
(the most ever), the most requests per host that arrived within 1 s and within 5 s, the wait before each
retry of a 503 that asked for ``Retry-After``, and which opted-out images it served. ``/_stats``
returns those figures as JSON.

Every host serves the same ``/robots.txt`` (:data:`ROBOTS_TXT`: everything disallowed for ``*``,
only ``/robots/`` for ``corpusforge``) and ``/.well-known/tdmrep.json`` (:data:`TDMREP_JSON`:
``/tdm/`` reserved), and counts how often each was asked for per host; the ``robots`` and ``tdm``
kinds must never be requested.

Given a certificate (``tls``: chain and key PEM files), the first ``https_hosts`` addresses also
serve the same routes over TLS on a second port (:meth:`SoakServer.host` hands those hosts out
as https), and the server counts the requests that came over TLS.

It runs in a child process (:class:`SoakServer`), so its CPU use does not slow the caller's.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import multiprocessing
import random
import socket
import ssl
import struct
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from aiohttp import web
from PIL import Image

log = logging.getLogger(__name__)

# Fault kinds and the weight of each among failures; the slow ones (each costs the client a full
# deadline per attempt) are rarer so a large soak stays quick.
SOAK_FAULTS = {
    "404": 3,
    "410": 3,
    "500": 3,
    "503_retry_after": 3,
    "reset": 3,
    "truncated": 3,
    "wrong_type": 3,
    "corrupt": 3,
    "undecodable": 3,
    "optout": 3,
    "timeout": 1,
    "slow_drip": 1,
    # Opt-outs of issue 17: disallowed by robots.txt, reserved by tdmrep.json (never requested),
    # X-Robots-Tag: noml.
    "robots": 2,
    "tdm": 2,
    "noml": 1,
}
NEVER_REQUESTED = ("robots", "tdm")
RATE_WINDOWS = (1.0, 5.0)  # seconds over which the server counts requests per host
RETRY_AFTER_SECONDS = 1
ROBOTS_TXT = b"User-agent: *\nDisallow: /\n\nUser-agent: corpusforge\nDisallow: /robots/\n"
TDMREP_JSON = b'[{"location": "/tdm/", "tdm-reservation": 1}]'
_IMAGES = 32


def _image_pool(seed: int = 0) -> list[bytes]:
    rng = random.Random(seed)
    pool = []
    for _ in range(_IMAGES):
        image = Image.new("RGB", (96, 72), tuple(rng.randrange(256) for _ in range(3)))
        for _ in range(6):
            box = sorted(rng.sample(range(96), 2)) + sorted(rng.sample(range(72), 2))
            image.paste(tuple(rng.randrange(256) for _ in range(3)), (box[0], box[2], box[1], box[3]))
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=85)
        pool.append(buffer.getvalue())
    return pool


class _State:
    def __init__(self, stall_seconds: float) -> None:
        self.images = _image_pool()
        self.stall_seconds = stall_seconds
        self.in_flight: Counter[str] = Counter()
        self.max_in_flight: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()
        self.first_503: dict[str, float] = {}
        self.retry_gaps: list[float] = []
        self.optout_served: set[int] = set()
        self.tls_requests = 0
        self.site_files: Counter[str] = Counter()  # "HOST PATH" -> requests for robots.txt, tdmrep.json
        self.arrivals: dict[str, list[float]] = {}  # host -> arrival times of its requests

    def stats(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "tls_requests": self.tls_requests,
            "max_in_flight_per_host": dict(self.max_in_flight),
            "retry_after_seconds": RETRY_AFTER_SECONDS,
            "retry_gaps": {
                "count": len(self.retry_gaps),
                "min": min(self.retry_gaps, default=None),
                "max": max(self.retry_gaps, default=None),
            },
            "retry_after_unanswered": len(self.first_503) - len(self.retry_gaps),
            "optout_served": sorted(self.optout_served),
            "site_files": dict(self.site_files),
            "most_requests_per_host": {
                f"{seconds:g}s": {host: _most_within(times, seconds) for host, times in self.arrivals.items()}
                for seconds in RATE_WINDOWS
            },
        }


def _most_within(times: list[float], seconds: float) -> int:
    """The most of ``times`` (in arrival order) that lie within ``seconds`` of each other."""
    most = start = 0
    for end, t in enumerate(times):
        while t - times[start] >= seconds:
            start += 1
        most = max(most, end - start + 1)
    return most


@web.middleware
async def _count_in_flight(request: web.Request, handler: Any) -> web.StreamResponse:
    state: _State = request.app["state"]
    host = request.transport.get_extra_info("sockname")[0] if request.transport else "?"
    state.in_flight[host] += 1
    state.max_in_flight[host] = max(state.max_in_flight[host], state.in_flight[host])
    if request.path != "/_stats":
        state.arrivals.setdefault(host, []).append(time.monotonic())
    try:
        return await handler(request)
    finally:
        # Runs before a plain response is sent, and when the client hangs up (handler cancelled).
        state.in_flight[host] -= 1


async def _serve(request: web.Request) -> web.StreamResponse:
    state: _State = request.app["state"]
    kind = request.match_info["kind"]
    index = int(request.match_info["index"])
    state.requests[kind] += 1
    if request.secure:
        state.tls_requests += 1
    image = state.images[index % len(state.images)]
    if kind == "ok":
        return web.Response(body=image, content_type="image/jpeg")
    if kind in ("404", "410", "500"):
        return web.Response(status=int(kind), text="no", content_type="text/plain")
    if kind == "503_retry_after":
        path = request.path
        first = state.first_503.get(path)
        if first is None:
            state.first_503[path] = time.monotonic()
            headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
            return web.Response(status=503, text="busy", content_type="text/plain", headers=headers)
        state.retry_gaps.append(time.monotonic() - first)
        return web.Response(body=image, content_type="image/jpeg")
    if kind == "timeout":
        await asyncio.sleep(state.stall_seconds)
        return web.Response(body=image, content_type="image/jpeg")
    if kind == "reset":
        sock = request.transport.get_extra_info("socket") if request.transport else None
        if sock is not None:  # a zero linger makes close() send RST instead of FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        request.transport.abort()
        raise asyncio.CancelledError
    if kind == "truncated":
        response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        response.content_length = len(image)
        await response.prepare(request)
        await response.write(image[: len(image) // 2])
        await asyncio.sleep(0.05)
        request.transport.close()
        raise asyncio.CancelledError
    if kind == "slow_drip":
        response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        response.content_length = len(image)
        await response.prepare(request)
        deadline = time.monotonic() + state.stall_seconds
        for byte in image:
            if time.monotonic() > deadline:
                break
            await response.write(bytes([byte]))
            await asyncio.sleep(0.25)
        return response
    if kind == "wrong_type":
        return web.Response(text="<html><body>a page</body></html>", content_type="text/html")
    if kind == "corrupt":
        return web.Response(body=image[:2] + bytes(reversed(image[2:])), content_type="image/jpeg")
    if kind == "undecodable":
        noise = random.Random(index).randbytes(2000)
        return web.Response(body=noise, content_type="image/jpeg")
    if kind == "optout":
        state.optout_served.add(index)
        return web.Response(body=image, content_type="image/jpeg", headers={"X-Robots-Tag": "noai"})
    if kind == "noml":
        state.optout_served.add(index)
        return web.Response(body=image, content_type="image/jpeg", headers={"X-Robots-Tag": "noml"})
    if kind in NEVER_REQUESTED:  # a client that asks anyway gets an image: the row shows it
        return web.Response(body=image, content_type="image/jpeg")
    return web.Response(status=400, text=f"unknown kind {kind}", content_type="text/plain")


async def _site_file(request: web.Request) -> web.Response:
    state: _State = request.app["state"]
    host = request.transport.get_extra_info("sockname")[0] if request.transport else "?"
    state.site_files[f"{host} {request.path}"] += 1
    if request.path == "/robots.txt":
        return web.Response(body=ROBOTS_TXT, content_type="text/plain")
    return web.Response(body=TDMREP_JSON, content_type="application/json")


async def _stats(request: web.Request) -> web.Response:
    return web.json_response(request.app["state"].stats())


async def _run(
    hosts: int, stall_seconds: float, tls: tuple[str, str] | None, https_hosts: int, ready: Any, stop: Any
) -> None:
    app = web.Application(middlewares=[_count_in_flight])
    app["state"] = _State(stall_seconds)
    app.router.add_get("/_stats", _stats)
    app.router.add_get("/robots.txt", _site_file)
    app.router.add_get("/.well-known/tdmrep.json", _site_file)
    app.router.add_get(r"/{kind}/{index:\d+}.jpg", _serve)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    port = await _sites(runner, range(1, hosts + 1), None)
    tls_port = 0
    if tls is not None and https_hosts:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*tls)
        tls_port = await _sites(runner, range(1, https_hosts + 1), context)
    ready.send((port, tls_port))
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, stop.wait)
    await runner.cleanup()


async def _sites(runner: web.AppRunner, hosts: range, context: ssl.SSLContext | None) -> int:
    """Listen on 127.0.0.H for every H in ``hosts``, all on one port (the OS picks it); return it."""
    port = 0
    for h in hosts:
        site = web.TCPSite(runner, f"127.0.0.{h}", port, backlog=1024, ssl_context=context)
        await site.start()
        port = port or site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return port


def _main(
    hosts: int, stall_seconds: float, tls: tuple[str, str] | None, https_hosts: int, ready: Any, stop: Any
) -> None:
    logging.getLogger("aiohttp").setLevel(logging.CRITICAL)
    asyncio.run(_run(hosts, stall_seconds, tls, https_hosts, ready, stop))


class SoakServer:
    """The soak server in a child process, on ``hosts`` loopback addresses sharing one port."""

    def __init__(
        self,
        hosts: int = 16,
        stall_seconds: float = 10.0,
        tls: tuple[str | Path, str | Path] | None = None,
        https_hosts: int = 0,
    ) -> None:
        if not 1 <= hosts <= 254:
            raise ValueError("hosts must be 1..254 (127.0.0.1 .. 127.0.0.254)")
        if not 0 <= https_hosts <= hosts or (https_hosts and tls is None):
            raise ValueError("https_hosts must be 0..hosts, and needs a certificate (tls)")
        self.hosts = hosts
        self.https_hosts = https_hosts
        self.stall_seconds = stall_seconds
        self.port = 0
        self.tls_port = 0
        files = (str(tls[0]), str(tls[1])) if tls is not None else None
        context = multiprocessing.get_context("spawn")
        self._ready, child_end = context.Pipe(duplex=False)
        self._stop = context.Event()
        self._process = context.Process(
            target=_main,
            args=(hosts, stall_seconds, files, https_hosts, child_end, self._stop),
            name="soak-server",
            daemon=True,
        )

    def host(self, index: int) -> str:
        """Base URL of host ``index`` (any integer; spread over the addresses), https for the first
        ``https_hosts`` addresses."""
        address = 1 + index % self.hosts
        if address <= self.https_hosts:
            return f"https://127.0.0.{address}:{self.tls_port}"
        return f"http://127.0.0.{address}:{self.port}"

    def start(self) -> SoakServer:
        self._process.start()
        if not self._ready.poll(60):
            self._process.kill()
            raise RuntimeError("the soak server did not start within 60 s")
        self.port, self.tls_port = self._ready.recv()
        return self

    def stats(self) -> dict[str, Any]:
        """The server's politeness figures so far (see module docstring)."""
        # No proxy: the environment's proxy settings must not send this off the machine.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://127.0.0.1:{self.port}/_stats", timeout=30) as response:
            return json.load(response)

    def stop(self) -> None:
        self._stop.set()
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()

    def __enter__(self) -> SoakServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
