"""Dynamic batching: requests queue up, one thread runs them through the model together.

Each request handler puts a :class:`Job` (its model inputs, already tokenised or preprocessed)
on the queue and waits for its rows. The batcher takes the first job, then keeps taking jobs until
``max_batch`` items are queued or ``max_wait`` seconds have passed since the first, and runs each
kind's items in chunks of at most ``max_batch``. :meth:`Batcher.metrics` counts requests, items
and model runs, so batching can be proven by counting.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)

Run = Callable[[str, np.ndarray], np.ndarray]
KINDS = ("text", "image")


@dataclass
class Job:
    """One request's inputs of one kind; ``result`` gets its embeddings, in order."""

    kind: str
    inputs: np.ndarray
    result: Future = field(default_factory=Future)


class Batcher:
    """The queue and the thread that empties it (start with :meth:`start`, end with :meth:`stop`)."""

    def __init__(self, run: Run, max_batch: int, max_wait: float) -> None:
        self._run = run
        self.max_batch = max_batch
        self.max_wait = max_wait
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._lock = threading.Lock()
        self._counts = {kind: {"requests": 0, "items": 0, "batches": 0, "largest_batch": 0} for kind in KINDS}
        self._thread = threading.Thread(target=self._loop, name="batcher", daemon=True)

    def start(self) -> Batcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def submit(self, kind: str, inputs: np.ndarray) -> Future:
        """Queue one request's inputs; the future gives their embeddings."""
        job = Job(kind, inputs)
        self._queue.put(job)
        return job.result

    def metrics(self) -> dict[str, object]:
        """Counters per kind and in total, with the mean batch size."""
        with self._lock:
            kinds = {kind: dict(counts) for kind, counts in self._counts.items()}
        total = {
            key: sum(counts[key] for counts in kinds.values()) for key in ("requests", "items", "batches")
        }
        for counts in (*kinds.values(), total):
            counts["mean_batch_size"] = counts["items"] / counts["batches"] if counts["batches"] else 0.0
        return {**total, "by_kind": kinds, "max_batch": self.max_batch, "max_wait_ms": self.max_wait * 1000}

    def _gather(self, first: Job) -> tuple[list[Job], bool]:
        jobs, items = [first], len(first.inputs)
        deadline = time.monotonic() + self.max_wait
        while items < self.max_batch:
            try:
                job = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if job is None:
                return jobs, True
            jobs.append(job)
            items += len(job.inputs)
        return jobs, False

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            jobs, stopping = self._gather(first)
            for kind in KINDS:
                mine = [job for job in jobs if job.kind == kind]
                if mine:
                    self._run_jobs(kind, mine)

    def _run_jobs(self, kind: str, jobs: list[Job]) -> None:
        inputs = np.concatenate([job.inputs for job in jobs])
        try:
            outputs = [
                self._run(kind, inputs[start : start + self.max_batch])
                for start in range(0, len(inputs), self.max_batch)
            ]
        except Exception as exc:  # noqa: BLE001 - handed to every waiting request
            log.exception("the %s encoder failed on a batch of %d", kind, len(inputs))
            for job in jobs:
                job.result.set_exception(exc)
            return
        embeddings = np.concatenate(outputs)
        with self._lock:
            counts = self._counts[kind]
            counts["requests"] += len(jobs)
            counts["items"] += len(inputs)
            counts["batches"] += len(outputs)
            counts["largest_batch"] = max(counts["largest_batch"], max(len(out) for out in outputs))
        start = 0
        for job in jobs:
            job.result.set_result(embeddings[start : start + len(job.inputs)])
            start += len(job.inputs)
