"""A local HTTP server that attacks its client: bombs, endless bodies, header floods, bad redirects.

Every route misbehaves in one way (see :data:`HOSTILE_ROUTES`); ``/redirect?to=URL`` sends the
client to any location, so tests can aim redirects at other loopback forms (``127.0.0.2``,
``2130706433``, ``0x7f.2``, ``[::1]``) or at names that a stubbed resolver maps to private ranges.
It listens on 127.0.0.1 only and records every path it was asked for (and the request's headers),
so a test can prove that a refused target was never contacted, or that a proxy forwarded a
request. Used by tests/fetch/test_hostile.py and the download tests; testkit/tls.py serves it
over TLS.
"""

from __future__ import annotations

import functools
import io
import struct
import threading
import time
import zlib
from collections import Counter
from urllib.parse import parse_qs, urlsplit

from PIL import Image

from pipeline.synthetic.server import LoopbackHandler, LoopbackServer, gzip_bomb, png_bomb

_CHUNK = b"\0" * 65536
# What each route does; the values are the failure a safe client must report.
HOSTILE_ROUTES = {
    "/ok.jpg": "a small valid JPEG (the control)",
    "/endless_chunked": "chunked image/jpeg body that never ends",
    "/endless_close": "body without length that never ends (read until close)",
    "/content_length_lie": "Content-Length of 1 TB",
    "/gzip_bomb": "64 MiB of zeros gzip-compressed to 64 KB",
    "/deflate_bomb": "64 MiB of zeros deflate-compressed",
    "/double_gzip_bomb": "Content-Encoding: gzip, gzip around a bomb",
    "/brotli": "Content-Encoding: br (a bomb if the client had a Brotli decoder)",
    "/header_flood": "header lines that never end",
    "/huge_header": "one 1 MiB header line",
    "/slow_drip": "one byte every 0.2 s, forever",
    "/slow_headers": "status line, then one header byte every 0.2 s",
    "/png_bomb": "PNG whose header claims 60000x60000 pixels",
    "/jpeg_bomb": "JPEG whose header claims 60000x60000 pixels",
    "/html_as_jpeg": "an HTML page served as image/jpeg",
    "/svg_as_jpeg": "an SVG served as image/jpeg",
    "/svg": "an SVG served as image/svg+xml",
    "/redirect_loop": "redirects to itself",
    "/redirect": "redirects to the URL in ?to=",
}


@functools.cache
def small_jpeg() -> bytes:
    """A valid 64x48 JPEG."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (40, 120, 200)).save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


@functools.cache
def jpeg_bomb(width: int = 60000, height: int = 60000) -> bytes:
    """A small JPEG whose start-of-frame header claims ``width`` x ``height`` pixels."""
    data = bytearray(small_jpeg())
    for marker in (b"\xff\xc0", b"\xff\xc2"):  # baseline or progressive start of frame
        at = data.find(marker)
        if at >= 0:
            # SOF: marker, length (2), precision (1), height (2), width (2)
            struct.pack_into(">HH", data, at + 5, height, width)
            return bytes(data)
    raise ValueError("no start-of-frame marker in the JPEG")


@functools.cache
def deflate_bomb() -> bytes:
    """64 MiB of zeros as a zlib (HTTP ``deflate``) stream."""
    return zlib.compress(b"\0" * (64 * 1024 * 1024), 9)


@functools.cache
def double_gzip_bomb() -> bytes:
    """:func:`gzip_bomb` compressed once more (``Content-Encoding: gzip, gzip``)."""
    import gzip

    return gzip.compress(gzip_bomb(), compresslevel=9)


class HostileServer(LoopbackServer):
    """Serves :data:`HOSTILE_ROUTES` on 127.0.0.1; use as a context manager."""

    thread_name = "hostile-server"

    def __init__(self, port: int = 0, drip_seconds: float = 0.2, drip_limit: float = 60.0) -> None:
        super().__init__(_HostileHandler, port)
        self.drip_seconds = drip_seconds
        self.drip_limit = drip_limit  # endless responses stop after this long, client or not
        self.requests: Counter[str] = Counter()
        self.request_headers: list[tuple[str, dict[str, str]]] = []  # (path, headers) of every request
        self.bytes_sent: Counter[str] = Counter()
        self._stopping = threading.Event()

    def prepare(self) -> None:
        for build in (gzip_bomb, deflate_bomb, double_gzip_bomb, jpeg_bomb):
            build()  # not while a client's deadline runs

    def stop(self) -> None:
        self._stopping.set()
        super().stop()

    def seen(self, path: str, headers: dict[str, str] | None = None) -> None:
        with self._lock:
            self.requests[path] += 1
            self.request_headers.append((path, headers or {}))

    def sent(self, path: str, count: int) -> None:
        with self._lock:
            self.bytes_sent[path] += count

    def endless(self) -> bool:
        """Whether an endless response should keep going."""
        return not self._stopping.is_set()


class _HostileHandler(LoopbackHandler):
    server: HostileServer

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        parts = urlsplit(self.path)
        self.server.seen(parts.path, dict(self.headers.items()))
        handler = getattr(self, "_route_" + parts.path.strip("/").replace(".", "_"), None)
        try:
            if handler is None:
                self._send(404, b"no such route", "text/plain")
            else:
                handler(parse_qs(parts.query))
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True

    def _stream(self, path: str, piece: bytes, chunked: bool, pause: float = 0.0) -> None:
        started = time.monotonic()
        while self.server.endless() and time.monotonic() - started < self.server.drip_limit:
            data = b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece
            self.wfile.write(data)
            self.server.sent(path, len(piece))
            if pause:
                self.wfile.flush()
                time.sleep(pause)
        self.close_connection = True

    def _route_ok_jpg(self, query: dict[str, list[str]]) -> None:
        self._send(200, small_jpeg(), "image/jpeg")

    def _route_endless_chunked(self, query: dict[str, list[str]]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._stream("/endless_chunked", _CHUNK, chunked=True)

    def _route_endless_close(self, query: dict[str, list[str]]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Connection", "close")
        self.end_headers()
        self._stream("/endless_close", _CHUNK, chunked=False)

    def _route_content_length_lie(self, query: dict[str, list[str]]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(10**12))
        self.end_headers()
        self._stream("/content_length_lie", _CHUNK, chunked=False)

    def _route_gzip_bomb(self, query: dict[str, list[str]]) -> None:
        self._send(200, gzip_bomb(), "image/jpeg", {"Content-Encoding": "gzip"})

    def _route_deflate_bomb(self, query: dict[str, list[str]]) -> None:
        self._send(200, deflate_bomb(), "image/jpeg", {"Content-Encoding": "deflate"})

    def _route_double_gzip_bomb(self, query: dict[str, list[str]]) -> None:
        self._send(200, double_gzip_bomb(), "image/jpeg", {"Content-Encoding": "gzip, gzip"})

    def _route_brotli(self, query: dict[str, list[str]]) -> None:
        self._send(200, b"\x00" * 4096, "image/jpeg", {"Content-Encoding": "br"})

    def _route_header_flood(self, query: dict[str, list[str]]) -> None:
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\n")
        started = time.monotonic()
        n = 0
        while self.server.endless() and time.monotonic() - started < self.server.drip_limit:
            line = b"X-Flood-%d: %s\r\n" % (n, b"a" * 100)
            self.wfile.write(line)
            self.server.sent("/header_flood", len(line))
            n += 1
        self.close_connection = True

    def _route_huge_header(self, query: dict[str, list[str]]) -> None:
        self._send(200, small_jpeg(), "image/jpeg", {"X-Huge": "a" * (1 << 20)})

    def _route_slow_drip(self, query: dict[str, list[str]]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", "1000000")
        self.end_headers()
        self._stream("/slow_drip", b"\0", chunked=False, pause=self.server.drip_seconds)

    def _route_slow_headers(self, query: dict[str, list[str]]) -> None:
        self.wfile.write(b"HTTP/1.1 200 OK\r\n")
        self._stream("/slow_headers", b"X", chunked=False, pause=self.server.drip_seconds)

    def _route_png_bomb(self, query: dict[str, list[str]]) -> None:
        self._send(200, png_bomb(60000, 60000), "image/png")

    def _route_jpeg_bomb(self, query: dict[str, list[str]]) -> None:
        self._send(200, jpeg_bomb(), "image/jpeg")

    def _route_html_as_jpeg(self, query: dict[str, list[str]]) -> None:
        self._send(200, b"<!DOCTYPE html><html><body>not an image</body></html>", "image/jpeg")

    def _route_svg_as_jpeg(self, query: dict[str, list[str]]) -> None:
        self._send(200, _SVG, "image/jpeg")

    def _route_svg(self, query: dict[str, list[str]]) -> None:
        self._send(200, _SVG, "image/svg+xml")

    def _route_redirect_loop(self, query: dict[str, list[str]]) -> None:
        self._send(302, b"", "text/plain", {"Location": "/redirect_loop"})

    def _route_redirect(self, query: dict[str, list[str]]) -> None:
        self._send(302, b"", "text/plain", {"Location": query.get("to", ["/ok.jpg"])[0]})


_SVG = (
    b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="60000" height="60000">'
    b'<rect width="60000" height="60000"/></svg>'
)
