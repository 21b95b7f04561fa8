"""What a page of the explorer shows: a query (text, image, 'more like this' or none) and filters.

A query with a vector asks the kNN index for its nearest samples and keeps those that pass the
filters, best first, up to ``max_results``; when the filters drop most of them it asks again for
more (four times as many each time, up to 16 x ``max_results`` or the whole index). Without a
vector the page lists every sample that passes the filters, highest CLIP score first.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from pipeline.errors import UserInputError
from pipeline.explore.catalog import Catalog, Filters
from pipeline.explore.encoder import QueryEncoder

#: What a text query is compared with: the images (CLIP's text-to-image search) or the captions
#: (text-to-text, needs an index built with ``jobs/index.py --text``).
TARGETS = ("images", "captions")
_MAX_GROWTH = 16


@dataclass(frozen=True)
class Query:
    """One search: at most one of ``text``, ``like`` (a uid) and ``image`` (an upload's token)."""

    text: str = ""
    like: str = ""
    image: str = ""
    target: str = "images"
    filters: Filters = field(default_factory=Filters)

    def __post_init__(self) -> None:
        given = [name for name in ("text", "like", "image") if getattr(self, name)]
        if len(given) > 1:
            raise UserInputError(f"give one query at a time, not {' and '.join(given)}")
        if self.target not in TARGETS:
            raise UserInputError(f"search target must be one of {', '.join(TARGETS)}, got {self.target!r}")

    @property
    def kind(self) -> str:
        """``text``, ``like``, ``image`` or ``browse`` (no vector: filters only)."""
        for name in ("text", "like", "image"):
            if getattr(self, name):
                return name
        return "browse"


@dataclass(frozen=True)
class Results:
    """Catalog rows in the order shown; similarities to the query for vector searches."""

    rows: np.ndarray
    similarities: np.ndarray | None
    #: A vector search stopped at ``max_results`` (more samples may match the filters).
    capped: bool

    @property
    def total(self) -> int:
        return len(self.rows)


class Searcher:
    """Runs queries against a catalog and its kNN indexes (``image`` and, if built, ``text``)."""

    def __init__(
        self, catalog: Catalog, indexes: dict, encoder: QueryEncoder, max_results: int, uploads: int = 64
    ) -> None:
        self.catalog = catalog
        self.indexes = indexes
        self.encoder = encoder
        self.max_results = max_results
        scores = catalog.scores
        # Browsing order, computed once: highest CLIP score first, unscored last, then by row.
        self._browse_order = np.argsort(np.where(np.isnan(scores), np.inf, -scores), kind="stable")
        self._uploads: OrderedDict[str, np.ndarray] = OrderedDict()
        self._upload_capacity = uploads
        self._lock = threading.Lock()

    def remember_upload(self, data: bytes, name: str) -> str:
        """Embed an uploaded image and return the token a query names it by."""
        vector = self.encoder.image(data, name)
        token = hashlib.sha256(data).hexdigest()[:24]
        with self._lock:
            self._uploads[token] = vector
            self._uploads.move_to_end(token)
            while len(self._uploads) > self._upload_capacity:
                self._uploads.popitem(last=False)
        return token

    def run(self, query: Query) -> Results:
        """The samples ``query`` selects, in the order a page shows them."""
        mask = self.catalog.mask(query.filters)
        if query.kind == "browse":
            order = self._browse_order
            return Results(order[mask[order]], None, capped=False)
        return self._nearest(query, mask)

    def _vector(self, query: Query) -> tuple[np.ndarray, str]:
        """The query vector and the index it is searched in."""
        if query.kind == "text":
            if query.target == "captions" and "text" not in self.indexes:
                raise UserInputError(
                    "searching captions needs a text index: run "
                    "spark-submit jobs/index.py --dataset DIR --text"
                )
            return self.encoder.text(query.text), "image" if query.target == "images" else "text"
        if query.kind == "like":
            vector = self.indexes["image"].embedding(query.like)
            if vector is None:
                raise UserInputError(f"sample {query.like} has no stored image embedding in the index")
            return np.asarray(vector, np.float32).reshape(1, -1), "image"
        with self._lock:
            vector = self._uploads.get(query.image)
        if vector is None:
            raise UserInputError("that uploaded image is no longer remembered by the server: upload it again")
        return vector, "image"

    def _nearest(self, query: Query, mask: np.ndarray) -> Results:
        vector, kind = self._vector(query)
        index = self.indexes[kind]
        total = index.ntotal
        k = min(total, self.max_results)
        while True:
            hits = index.search(vector, k)[0]
            rows = self.catalog.rows_of([uid for uid, _ in hits])
            similarities = np.asarray([sim for _, sim in hits], np.float32)
            keep = rows >= 0
            keep[keep] = mask[rows[keep]]
            enough = int(keep.sum()) >= self.max_results
            if enough or not query.filters.active or k >= total or k >= _MAX_GROWTH * self.max_results:
                break
            k = min(total, k * 4)
        capped = k < total or int(keep.sum()) > self.max_results
        rows, similarities = rows[keep][: self.max_results], similarities[keep][: self.max_results]
        return Results(rows, similarities, capped=capped)
