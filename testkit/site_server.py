"""A loopback image host with a robots.txt, a tdmrep.json and opt-out routes, that counts everything.

``/robots.txt`` and ``/.well-known/tdmrep.json`` answer what the test set (:attr:`SiteServer.robots`,
:attr:`SiteServer.tdmrep`: bytes for a 200, an int for that status, a str for a 302 there, None
for 404). Image routes
(any path ending in ``.jpg``) answer a small JPEG, a different picture per path, with a
behaviour chosen by the first path segment:

- ``/tdm/...``: ``tdm-reservation: 1`` and a ``tdm-policy`` header; ``/tdm0/...``: ``tdm-reservation: 0``;
- ``/noml/...``: ``X-Robots-Tag: noml``;
- ``/429/...``: the first request for the path is a 429 without ``Retry-After``; ``/429ra/...``: a 429
  with ``Retry-After: 1``;
- ``/slow/...``: answered after :attr:`SiteServer.slow_seconds`;
- ``/redirect?to=URL``: a 302 to URL;
- anything else: the image.

The server records every request as (monotonic time, Host header, path) and the most requests it
ever had in flight per Host name, so tests count what reached it (robots.txt fetches, requests for
blocked or disallowed URLs: none) and measure politeness from its own side.
"""

from __future__ import annotations

import functools
import hashlib
import io
import time
from collections import Counter
from urllib.parse import parse_qs, urlsplit

from PIL import Image

from pipeline.synthetic.server import LoopbackHandler, LoopbackServer

ROBOTS = "/robots.txt"
Answer = bytes | int | str | None  # a site file's answer: 200 with bytes, a status, a redirect, 404
TDMREP = "/.well-known/tdmrep.json"


@functools.cache
def image_for(path: str) -> bytes:
    """A small JPEG whose colours depend on ``path`` (distinct sha256 and pHash per path)."""
    digest = hashlib.sha256(path.encode()).digest()
    image = Image.new("RGB", (64, 48), tuple(digest[:3]))
    for i in range(4):
        x, y = digest[3 + i] % 48, digest[7 + i] % 32
        image.paste(tuple(digest[11 + 3 * i : 14 + 3 * i]), (x, y, x + 16, y + 16))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


class SiteServer(LoopbackServer):
    """An image host on 127.0.0.1 (see module docstring); use as a context manager."""

    thread_name = "site-server"
    request_queue_size = 128

    def __init__(self, robots: Answer = None, tdmrep: Answer = None, slow_seconds: float = 0.3) -> None:
        super().__init__(_SiteHandler)
        self.robots = robots
        self.tdmrep = tdmrep
        self.slow_seconds = slow_seconds
        self.requests: Counter[str] = Counter()  # path -> requests
        self.log: list[tuple[float, str, str]] = []  # (monotonic time, Host name, path)
        self.in_flight: Counter[str] = Counter()
        self.max_in_flight: Counter[str] = Counter()  # Host name -> the most at once

    def reset(self, robots: Answer = None, tdmrep: Answer = None) -> SiteServer:
        """Forget every request and set new site files (one server for many tests)."""
        with self._lock:
            self.robots, self.tdmrep = robots, tdmrep
            self.requests.clear()
            self.log.clear()
            self.max_in_flight.clear()
        return self

    def enter(self, host: str, path: str) -> int:
        with self._lock:
            self.requests[path] += 1
            self.log.append((time.monotonic(), host, path))
            self.in_flight[host] += 1
            self.max_in_flight[host] = max(self.max_in_flight[host], self.in_flight[host])
            return self.requests[path]

    def leave(self, host: str) -> None:
        with self._lock:
            self.in_flight[host] -= 1

    def times(self, prefix: str = "/", host: str | None = None) -> list[float]:
        """Arrival times of the requests whose path starts with ``prefix`` (from ``host``), in order."""
        with self._lock:
            return [t for t, h, p in self.log if p.startswith(prefix) and (host is None or h == host)]

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


class _SiteHandler(LoopbackHandler):
    server: SiteServer

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        parts = urlsplit(self.path)
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
        seen = self.server.enter(host, parts.path)
        self._host: str | None = host
        try:
            self._route(parts.path, parse_qs(parts.query), seen)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            self._leave()

    def response_ready(self) -> None:
        self._leave()  # before the response goes out: the client's next request must not overlap it

    def _leave(self) -> None:
        if self._host is not None:
            self.server.leave(self._host)
            self._host = None

    def _route(self, path: str, query: dict[str, list[str]], seen: int) -> None:
        if path in (ROBOTS, TDMREP):
            answer = self.server.robots if path == ROBOTS else self.server.tdmrep
            if answer is None:
                return self._send(404, b"not found", "text/plain")
            if isinstance(answer, int):
                return self._send(answer, b"error", "text/plain")
            if isinstance(answer, str):
                return self._send(302, b"", "text/plain", {"Location": answer})
            return self._send(200, answer, "text/plain" if path == ROBOTS else "application/json")
        if path == "/redirect":
            return self._send(302, b"", "text/plain", {"Location": query.get("to", ["/ok.jpg"])[0]})
        if not path.endswith(".jpg"):
            return self._send(404, b"not found", "text/plain")
        kind = path.strip("/").split("/")[0]
        headers: dict[str, str] = {}
        if kind == "tdm":
            headers = {"tdm-reservation": "1", "tdm-policy": "https://rights.example/policy.json"}
        elif kind == "tdm0":
            headers = {"tdm-reservation": "0"}
        elif kind == "noml":
            headers = {"X-Robots-Tag": "noml"}
        elif kind == "429" and seen == 1:
            return self._send(429, b"slow down", "text/plain")
        elif kind == "429ra" and seen == 1:
            return self._send(429, b"slow down", "text/plain", {"Retry-After": "1"})
        elif kind == "slow":
            time.sleep(self.server.slow_seconds)
        self._send(200, image_for(path), "image/jpeg", headers)
