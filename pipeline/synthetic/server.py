"""A local HTTP server for a synthetic world that can misbehave on chosen URLs.

``/images/NAME`` serves a file normally; ``/fault/KIND/images/NAME`` serves it with fault KIND
(see :data:`pipeline.synthetic.world.FAULTS`). The server records how many requests it saw per
path and the most it ever handled at once, so tests can check politeness from the server's side.
"""

from __future__ import annotations

import functools
import gzip
import logging
import socket
import struct
import threading
import time
import zlib
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self
from urllib.parse import unquote, urlsplit

log = logging.getLogger(__name__)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int, height: int) -> bytes:
    """A small valid-looking PNG whose header claims ``width`` x ``height`` pixels.

    The pixel data is a few KB of compressed zeros: decoding it fully would need width x height x 3
    bytes of memory, which is what a decompression bomb relies on.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * (1 << 20), 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


@functools.cache
def gzip_bomb() -> bytes:
    """64 MiB of zeros, gzip-compressed to about 64 KB (computed once per process)."""
    return gzip.compress(b"\0" * (64 * 1024 * 1024), compresslevel=6)


class LoopbackServer(ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1 in a background thread: ``with Server(...) as server``.

    Subclasses build what their responses need in :meth:`prepare` (before the first client's
    deadline runs) and handle their routes with ``handler``.
    """

    daemon_threads = True
    thread_name = "loopback-server"

    def __init__(self, handler: type[BaseHTTPRequestHandler], port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), handler)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def prepare(self) -> None:
        """Work to do before serving (nothing by default)."""

    def start(self) -> Self:
        self.prepare()
        self._thread = threading.Thread(target=self.serve_forever, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def handle_error(self, request: object, client_address: object) -> None:
        # Clients that give up mid-response (timeouts, caps) are part of the tests, not errors.
        log.debug("connection from %s ended abruptly", client_address, exc_info=True)


class LoopbackHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive, quiet logs and one way to send a whole response."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s " + format, self.address_string(), *args)

    def response_ready(self) -> None:
        """Called when a response's headers are set, just before any of it goes out."""

    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.response_ready()
        self.end_headers()
        self.wfile.write(body)


class WorldServer(LoopbackServer):
    """Serves ``root`` on 127.0.0.1; start with :meth:`start`, stop with :meth:`stop`."""

    request_queue_size = 256
    thread_name = "world-server"

    def __init__(self, root: str | Path, port: int = 0, slow_seconds: float = 3.0) -> None:
        super().__init__(_Handler, port)
        self.root = Path(root).resolve()
        self.slow_seconds = slow_seconds
        self.requests: Counter[str] = Counter()
        # (monotonic time, path, User-Agent) of every request, for politeness checks.
        self.request_log: list[tuple[float, str, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0

    def prepare(self) -> None:
        gzip_bomb()  # build it now, not while a client's deadline runs

    def enter(self, path: str, user_agent: str) -> int:
        with self._lock:
            self.requests[path] += 1
            self.request_log.append((time.monotonic(), path, user_agent))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return self.requests[path]

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1


class _Handler(LoopbackHandler):
    server: WorldServer

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        path = unquote(urlsplit(self.path).path)
        seen = self.server.enter(path, self.headers.get("User-Agent", ""))
        self._in_flight = True
        try:
            self._route(path, seen)
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            self._leave()

    def response_ready(self) -> None:
        # Stop counting the request before its response goes out: once the client has it, it
        # may send its next request, which must not find this one still counted.
        self._leave()

    def _leave(self) -> None:
        """The request stops counting as in flight (once)."""
        if self._in_flight:
            self._in_flight = False
            self.server.leave()

    def _route(self, path: str, seen: int) -> None:
        parts = path.strip("/").split("/")
        fault = None
        if len(parts) >= 3 and parts[0] == "fault":
            fault, parts = parts[1], parts[2:]
        file = (self.server.root / "/".join(parts)).resolve()
        if self.server.root not in file.parents or not file.is_file():
            return self._send(404, b"not found", "text/plain")
        body = file.read_bytes()
        if fault is None:
            return self._send(200, body, "image/jpeg")
        handler = getattr(self, f"_fault_{fault}", None)
        if handler is None:
            return self._send(400, f"unknown fault {fault}".encode(), "text/plain")
        handler(body, "/".join(parts), seen)

    def _redirect(self, location: str) -> None:
        self._send(302, b"", "text/plain", {"Location": location})

    def _fault_404(self, body: bytes, rel: str, seen: int) -> None:
        self._send(404, b"not found", "text/plain")

    def _fault_410(self, body: bytes, rel: str, seen: int) -> None:
        self._send(410, b"gone", "text/plain")

    def _fault_500(self, body: bytes, rel: str, seen: int) -> None:
        self._send(500, b"server error", "text/plain")

    def _fault_503_then_ok(self, body: bytes, rel: str, seen: int) -> None:
        if seen == 1:
            return self._send(503, b"busy", "text/plain", {"Retry-After": "1"})
        self._send(200, body, "image/jpeg")

    def _fault_429_then_ok(self, body: bytes, rel: str, seen: int) -> None:
        if seen == 1:
            return self._send(429, b"slow down", "text/plain", {"Retry-After": "1"})
        self._send(200, body, "image/jpeg")

    def _fault_slow(self, body: bytes, rel: str, seen: int) -> None:
        time.sleep(self.server.slow_seconds)
        self._send(200, body, "image/jpeg")

    def _fault_reset(self, body: bytes, rel: str, seen: int) -> None:
        # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True

    def _fault_truncated(self, body: bytes, rel: str, seen: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        self.close_connection = True

    def _fault_wrong_type(self, body: bytes, rel: str, seen: int) -> None:
        self._send(200, b"<html><body>an HTML page</body></html>", "text/html; charset=utf-8")

    def _fault_html_as_jpeg(self, body: bytes, rel: str, seen: int) -> None:
        self._send(200, b"<!DOCTYPE html><html><body>not an image</body></html>", "image/jpeg")

    def _fault_svg_as_jpeg(self, body: bytes, rel: str, seen: int) -> None:
        svg = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'
        self._send(200, svg, "image/jpeg")

    def _fault_huge(self, body: bytes, rel: str, seen: int) -> None:
        self._send(200, png_bomb(60000, 60000), "image/png")

    def _fault_corrupt(self, body: bytes, rel: str, seen: int) -> None:
        self._send(200, body[:2] + bytes(reversed(body[2:])), "image/jpeg")

    def _fault_empty(self, body: bytes, rel: str, seen: int) -> None:
        self._send(200, b"", "image/jpeg")

    def _fault_redirect(self, body: bytes, rel: str, seen: int) -> None:
        self._redirect(f"/{rel}")

    def _fault_redirect_loop(self, body: bytes, rel: str, seen: int) -> None:
        self._redirect(self.path)

    def _fault_redirect_private(self, body: bytes, rel: str, seen: int) -> None:
        # Another loopback address: refused unless allowed, and harmless if the guard were broken.
        self._redirect(f"http://127.0.0.2:{self.server.server_address[1]}/{rel}")

    def _fault_optout(self, body: bytes, rel: str, seen: int) -> None:
        self._send(200, body, "image/jpeg", {"X-Robots-Tag": "noai, noimageai"})

    def _fault_gzip_bomb(self, body: bytes, rel: str, seen: int) -> None:
        self._send(200, gzip_bomb(), "image/jpeg", {"Content-Encoding": "gzip"})
