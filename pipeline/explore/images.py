"""Stored images of a dataset by uid, read by range from the raw tars, and their thumbnails."""

from __future__ import annotations

import io
import logging
import threading
from collections import OrderedDict
from functools import lru_cache

from PIL import Image

from pipeline.dataset import IMAGE_EXTS, Dataset
from pipeline.shards.tar_reader import SampleRange

log = logging.getLogger(__name__)

_MIME = {"jpg": "image/jpeg", "webp": "image/webp", "png": "image/png"}


class SampleImages:
    """``image(shard, uid)``: the stored bytes and MIME type; ``thumbnail``: a small JPEG of it.

    The tar index of a shard (one pass over its headers) is kept for the ``index_cache`` shards
    used last, so a page of results costs one ranged read per image.
    """

    def __init__(self, dataset: Dataset, index_cache: int = 64) -> None:
        self.dataset = dataset
        self._indices: OrderedDict[int, dict[str, SampleRange]] = OrderedDict()
        self._capacity = index_cache
        self._lock = threading.Lock()
        self.thumbnail = lru_cache(maxsize=2048)(self._thumbnail)

    def _index(self, shard: int) -> dict[str, SampleRange]:
        with self._lock:
            if shard in self._indices:
                self._indices.move_to_end(shard)
                return self._indices[shard]
        index = self.dataset.raw.shard(shard).tar.index()
        with self._lock:
            self._indices[shard] = index
            while len(self._indices) > self._capacity:
                self._indices.popitem(last=False)
        return index

    def image(self, shard: int, uid: str) -> tuple[bytes, str] | None:
        """The stored image of ``uid`` in raw shard ``shard``, or None when the tar lacks it."""
        where = self._index(shard).get(uid)
        if where is None:
            return None
        tar = self.dataset.raw.shard(shard).tar
        with tar.open() as handle:
            members = tar.read_range(handle, where)
        for ext in IMAGE_EXTS:
            if ext in members:
                return members[ext], _MIME[ext]
        return None

    def _thumbnail(self, shard: int, uid: str, side: int) -> bytes | None:
        found = self.image(shard, uid)
        if found is None:
            return None
        with Image.open(io.BytesIO(found[0])) as image:
            small = image.convert("RGB")
            small.thumbnail((side, side))
            out = io.BytesIO()
            small.save(out, "JPEG", quality=85)
            return out.getvalue()


class BenchmarkImages:
    """Benchmark pictures by benchmark id, read from the ``--benchmark`` paths dedup recorded.

    None when dedup has not run, the benchmark was given as precomputed hashes, or its files have
    moved since (the page then says the picture is not available).
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self._sources: dict[str, object] | None = None
        self._lock = threading.Lock()
        self.image = lru_cache(maxsize=256)(self._image)

    def _by_name(self) -> dict[str, object]:
        from pipeline.dedup.benchmark_sources import resolve_sources
        from pipeline.errors import UserInputError

        with self._lock:
            if self._sources is None:
                summary = self.dataset.dedup.summary() or {}
                paths = tuple((summary.get("options") or {}).get("benchmarks") or ())
                try:
                    self._sources = {s.name: s for s in resolve_sources(paths)}
                except UserInputError as exc:
                    log.warning("benchmark pictures are not available: %s", exc)
                    self._sources = {}
            return self._sources

    def _image(self, benchmark_id: str) -> bytes | None:
        from pipeline.dedup.benchmark_sources import image_bytes

        name, _, member = benchmark_id.partition("/")
        source = self._by_name().get(name)
        return None if source is None else image_bytes(source, member)  # type: ignore[arg-type]
