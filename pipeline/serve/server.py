"""The embedding server: encoders, batcher and Flask app on werkzeug's threaded server.

:class:`ModelServer` runs it in a background thread (tests, benchmarks); :func:`serve_forever`
is ``corpusforge serve``. Nothing here imports torch.
"""

from __future__ import annotations

import logging
import threading

from werkzeug.serving import make_server

from pipeline.serve.app import create_app
from pipeline.serve.batcher import Batcher
from pipeline.serve.encoders import Encoders
from pipeline.serve.options import ServeModelOptions

log = logging.getLogger(__name__)


class ModelServer:
    """The server bound to ``options.host:options.port`` (a free port for 0); a context manager."""

    def __init__(self, options: ServeModelOptions) -> None:
        self.encoders = Encoders(options.model, options.threads)
        self.batcher = Batcher(self.encoders.run, options.max_batch, options.max_wait_ms / 1000).start()
        app = create_app(
            self.encoders,
            self.batcher,
            options.max_items,
            int(options.max_body_mb * 1024 * 1024),
            options.timeout_s,
        )
        self._server = make_server(options.host, options.port, app, threaded=True)
        self.port = self._server.server_port
        self.base_url = f"http://{options.host}:{self.port}"
        self._thread: threading.Thread | None = None

    def start(self) -> ModelServer:
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self._server.serve_forever, name="model-server", daemon=True)
        self._thread.start()
        log.info("serving %s at %s", self.encoders.manifest["model"], self.base_url)
        return self

    def stop(self) -> None:
        """Stop accepting requests, then stop the batcher."""
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.batcher.stop()

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_forever(options: ServeModelOptions) -> None:
    """``corpusforge serve``: serve until interrupted."""
    server = ModelServer(options)
    log.info(
        "serving %s at %s (max batch %d, max wait %g ms)",
        server.encoders.manifest["model"],
        server.base_url,
        options.max_batch,
        options.max_wait_ms,
    )
    try:
        server._server.serve_forever()
    finally:
        server._server.server_close()
        server.batcher.stop()
