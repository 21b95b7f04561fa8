"""The shard runner: the one commit protocol of every stage.

A unit of output (a raw shard, its scores, a cached hash table, a final shard) is a set of files
and a marker. :func:`run_shard`

1. skips the unit when its marker exists, names the same input fingerprint and its files are
   all in place (a resume, or a Spark task retried after it had committed);
2. otherwise hands the work a :class:`ShardCommit`, which gives every file a unique temporary
   name, so concurrent or retried attempts never share a file;
3. when the work returns, renames the files into place in the declared order and writes the
   marker last (atomically). The marker is the only proof the unit is complete; a rerun redoes
   any unit without one, from scratch.

The fingerprint is a digest of everything the output depends on (the upstream markers' tokens,
the options that shape the output, format versions): a changed input means a redo, not a reuse.
Downstream stages take an upstream unit's :func:`marker_token`, the digest of its marker, which
changes every time the unit is rewritten.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, Any

from pipeline.storage import Storage, parquet_bytes

FINGERPRINT_KEY = "fingerprint"


def fingerprint(**parts: Any) -> str:
    """Digest of JSON-able ``parts`` (keys sorted): equal inputs, equal fingerprint."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ShardOutput:
    """The files of one unit of output (paths under a storage root) and its marker."""

    files: tuple[tuple[str, ...], ...]  # each a tuple of path parts, renamed into place in this order
    marker: tuple[str, ...]


class ShardCommit:
    """Temporary names for a unit's files while it is written; :meth:`commit` publishes them."""

    def __init__(self, storage: Storage, output: ShardOutput) -> None:
        self.storage = storage
        self.output = output
        self._temps: dict[tuple[str, ...], str] = {}

    def temp(self, *parts: str) -> str:
        """The temporary path to write the output file ``parts`` to (the same one on every call)."""
        if parts not in self.output.files:
            raise KeyError(f"{'/'.join(parts)} is not an output of this unit ({self.output.files})")
        if parts not in self._temps:
            final = self.storage.path(*parts)
            self.storage.fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
            self._temps[parts] = self.storage.temp_name(final)
        return self._temps[parts]

    def open(self, *parts: str) -> IO[bytes]:
        """A binary file object writing the output file ``parts``."""
        return self.storage.fs.open(self.temp(*parts), "wb")

    def write_bytes(self, data: bytes, *parts: str) -> None:
        with self.open(*parts) as handle:
            handle.write(data)

    def write_parquet(self, table: Any, *parts: str) -> None:
        self.write_bytes(parquet_bytes(table), *parts)

    def commit(self, marker: dict[str, Any]) -> dict[str, Any]:
        """Rename every written file into place (declared order), then write ``marker``."""
        missing = [p for p in self.output.files if p not in self._temps]
        if missing:
            raise RuntimeError(f"unit committed without writing {['/'.join(p) for p in missing]}")
        for parts in self.output.files:
            self.storage.rename(self._temps[parts], self.storage.path(*parts))
        self._temps.clear()
        self.storage.write_json(marker, *self.output.marker)
        return marker

    def abort(self) -> None:
        """Delete what was written (the unit stays incomplete and is redone by the next run)."""
        for temp in self._temps.values():
            try:
                if self.storage.fs.exists(temp):
                    self.storage.fs.rm(temp)
            except OSError:
                pass  # a leftover temporary is removed by the next run before its tasks start
        self._temps.clear()


def completed(
    storage: Storage, output: ShardOutput, inputs: str, accept_legacy: bool = False
) -> dict[str, Any] | None:
    """The marker of a unit committed from the same inputs with all its files, else None.

    ``accept_legacy``: a marker without a fingerprint (written before markers had one) also
    counts, for stages whose driver has already checked the inputs another way.
    """
    if not storage.exists(*output.marker):
        return None
    marker = storage.read_json(*output.marker)
    fingerprint_ok = marker.get(FINGERPRINT_KEY) == inputs
    if not fingerprint_ok and not (accept_legacy and FINGERPRINT_KEY not in marker):
        return None
    if not all(storage.exists(*parts) for parts in output.files):
        return None
    return marker


def run_shard(
    storage: Storage,
    output: ShardOutput,
    inputs: str,
    work: Callable[[ShardCommit], dict[str, Any]],
    accept_legacy: bool = False,
) -> dict[str, Any]:
    """Produce one unit unless it is complete for ``inputs``; returns its marker and ``resumed``.

    ``work`` writes every file of ``output`` through the commit it is given and returns the
    marker's content (counts, digests); ``fingerprint`` and ``seconds`` are added here.
    ``accept_legacy`` as in :func:`completed`.
    """
    done = completed(storage, output, inputs, accept_legacy)
    if done is not None:
        return {**done, "resumed": True}
    started = time.time()
    commit = ShardCommit(storage, output)
    try:
        stats = work(commit)
        marker = commit.commit({**stats, FINGERPRINT_KEY: inputs, "seconds": round(time.time() - started, 3)})
    except BaseException:
        commit.abort()
        raise
    return {**marker, "resumed": False}


def marker_token(storage: Storage, marker: Sequence[str]) -> str:
    """Identity of a committed unit: the digest of its marker (rewritten on every redo)."""
    return hashlib.sha256(storage.read_bytes(*marker)).hexdigest()[:16]
