"""Start the explorer: check the dataset, load its catalog and index, serve the pages."""

from __future__ import annotations

import ipaddress
import logging
import threading
from types import TracebackType

from werkzeug.serving import BaseWSGIServer, make_server

from pipeline.dataset import Dataset
from pipeline.errors import UserInputError
from pipeline.explore.app import Explorer, create_app
from pipeline.explore.catalog import load_catalog
from pipeline.explore.encoder import QueryEncoder
from pipeline.explore.images import BenchmarkImages, SampleImages
from pipeline.explore.options import ExploreOptions
from pipeline.explore.search import Searcher

log = logging.getLogger(__name__)


def open_explorer(options: ExploreOptions) -> Explorer:
    """Everything the pages need, checked before anything is served.

    Refuses, saying which command to run, a dataset without raw shards, without saved embeddings
    or without an index (``jobs/index.py``), and an index whose model cannot be loaded.
    """
    from pipeline.index.inputs import scored_shards
    from pipeline.index.reader import KnnIndex

    dataset = Dataset(options.dataset)
    if not dataset.exists():
        raise UserInputError(f"--dataset {options.dataset}: no such dataset folder")
    catalog = load_catalog(dataset)
    try:
        index = KnnIndex.open(dataset, "image")
    except UserInputError:
        # Say the first thing missing: the embeddings (the score job) before the index.
        scored_shards(dataset, ("image",))
        raise
    indexes = {"image": index}
    try:
        indexes["text"] = KnnIndex.open(dataset, "text")
    except UserInputError:
        log.info("no text index (jobs/index.py --text): text queries search the images only")
    encoder = QueryEncoder(index.model, options.pretrained or index.pretrained, options.device)
    encoder.check()
    searcher = Searcher(catalog, indexes, encoder, options.max_results)
    return Explorer(
        name=dataset.display(),
        catalog=catalog,
        images=SampleImages(dataset),
        benchmarks=BenchmarkImages(dataset),
        searcher=searcher,
        page_size=options.page_size,
        model=f"{index.model} ({index.ntotal} indexed)",
    )


class ExplorerServer:
    """The explorer on a werkzeug server in a background thread (``with`` starts and stops it)."""

    def __init__(self, explorer: Explorer, host: str = "127.0.0.1", port: int = 0) -> None:
        self.explorer = explorer
        self._server: BaseWSGIServer = make_server(host, port, create_app(explorer), threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name="explorer", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def wait(self) -> None:
        """Block until the server stops (Ctrl-C raises KeyboardInterrupt here)."""
        while self._thread.is_alive():
            self._thread.join(timeout=1)

    def __enter__(self) -> ExplorerServer:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._thread.join(timeout=10)
        self._server.server_close()


def serve(options: ExploreOptions) -> None:
    """``corpusforge explore``: serve until interrupted."""
    _warn_if_public(options.host)
    explorer = open_explorer(options)
    server = ExplorerServer(explorer, options.host, options.port)
    log.info("explorer of %s at %s (Ctrl-C stops it)", explorer.name, server.url)
    with server:
        server.wait()


def _warn_if_public(host: str) -> None:
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        log.warning(
            "--host %s: the explorer has no authentication and shows every URL and caption of the "
            "dataset to anyone who can reach this address",
            host,
        )
