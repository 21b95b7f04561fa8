"""A loopback image server whose "flaky" URLs fail until a switch says they have recovered.

Routes (``NAME`` is any file name; each serves its own small JPEG, coloured by the name):

- ``/ok/NAME``: the image, always;
- ``/flaky/KIND/NAME``: while :attr:`FlakyServer.down` is true, fails with KIND (``503``,
  ``500``, ``429``, ``404``: that status; ``reset``: the connection is reset); once it is
  false, the image;
- ``/gone/NAME``: 404, always (``/robots.txt`` and ``/.well-known/tdmrep.json`` too: no opt-outs).

It counts the requests per path, so a test can tell which rows a job fetched again. Used by the
``--retry-failed`` and ``--append`` tests.
"""

from __future__ import annotations

import functools
import hashlib
import io
import socket
import struct
from collections import Counter
from urllib.parse import unquote, urlsplit

from PIL import Image

from pipeline.synthetic.server import LoopbackHandler, LoopbackServer

FLAKY_KINDS = ("503", "500", "429", "404", "reset")


@functools.cache
def named_jpeg(name: str) -> bytes:
    """A 64x48 JPEG whose colour depends on ``name`` (so different names store different images)."""
    colour = tuple(hashlib.sha256(name.encode()).digest()[:3])
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


class FlakyServer(LoopbackServer):
    """``with FlakyServer() as server``: ``server.down = False`` makes the flaky URLs recover."""

    thread_name = "flaky-server"
    request_queue_size = 64

    def __init__(self, port: int = 0) -> None:
        super().__init__(_Handler, port)
        self.down = True
        self.requests: Counter[str] = Counter()

    def url(self, route: str, name: str) -> str:
        """``http://127.0.0.1:PORT/ROUTE/NAME``, e.g. ``url("flaky/503", "a.jpg")``."""
        return f"{self.base_url}/{route}/{name}"

    def count(self, path: str) -> None:
        with self._lock:
            self.requests[path] += 1

    def seen(self, url: str) -> int:
        """How many times the path of ``url`` was requested."""
        with self._lock:
            return self.requests[urlsplit(url).path]


class _Handler(LoopbackHandler):
    server: FlakyServer

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        path = unquote(urlsplit(self.path).path)
        self.server.count(path)
        parts = path.strip("/").split("/")
        try:
            if len(parts) == 2 and parts[0] == "ok":
                return self._send(200, named_jpeg(parts[1]), "image/jpeg")
            if path in ("/robots.txt", "/.well-known/tdmrep.json"):
                return self._send(404, b"none", "text/plain")  # no opt-out file: everything allowed
            if len(parts) == 2 and parts[0] == "gone":
                return self._send(404, b"gone", "text/plain")
            if len(parts) == 3 and parts[0] == "flaky" and parts[1] in FLAKY_KINDS:
                if not self.server.down:
                    return self._send(200, named_jpeg(parts[2]), "image/jpeg")
                if parts[1] == "reset":
                    # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    return None
                return self._send(int(parts[1]), b"failing", "text/plain")
            return self._send(400, b"unknown route", "text/plain")
        except (BrokenPipeError, ConnectionResetError):
            return None
