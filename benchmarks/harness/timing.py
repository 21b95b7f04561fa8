"""Timing on a shared machine: CPU load, waiting for quiet, one-core pinning, best of rounds.

On a small shared machine other people's tests and builds skew every wall-clock number, so the
benchmarks record how busy the cores were, wait for a quiet machine before a measurement, and
report the thread's CPU time next to the wall time (CPU time is what other load hardly moves).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine from /proc/stat; (0, 0) where there is none."""
    try:
        fields = [float(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def busy_since(start: tuple[float, float]) -> float | None:
    """Share of all cores busy (any process) since ``start`` (a :func:`cpu_times` reading)."""
    busy, total = cpu_times()
    return round((busy - start[0]) / (total - start[1]), 3) if total > start[1] else None


def wait_for_quiet(max_wait: float, threshold: float = 0.15, interval: float = 2.0) -> float | None:
    """Wait (up to ``max_wait`` s) until other processes leave the cores idle; return the last busy share.

    Each check samples the machine's load over ``interval`` seconds; the returned share is
    recorded with the measurement that follows, so skewed numbers can be recognised.
    """
    deadline = time.monotonic() + max_wait
    warned = False
    while True:
        start = cpu_times()
        time.sleep(interval)
        busy = busy_since(start)
        if busy is None or busy < threshold:
            return busy
        if time.monotonic() >= deadline:
            log.warning("machine still %.0f%% busy with other work: this measurement is skewed", 100 * busy)
            return busy
        if not warned:
            log.warning("machine %.0f%% busy with other work: waiting up to %.0f s", 100 * busy, max_wait)
            warned = True


@contextmanager
def one_core() -> Iterator[int]:
    """Pin this process to one CPU (the last it may use) for the block; yields that CPU.

    Single-core timings then cannot borrow a second core (numpy, Pillow or BLAS threads).
    Where affinity cannot be set, nothing is pinned and -1 is yielded.
    """
    if not hasattr(os, "sched_getaffinity"):
        yield -1
        return
    allowed = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {allowed[-1]})
    try:
        yield allowed[-1]
    finally:
        os.sched_setaffinity(0, allowed)


@dataclass(frozen=True)
class Timing:
    """The best (lowest) thread CPU seconds and wall seconds over the rounds of one method."""

    cpu_s: float
    wall_s: float
    rounds: int

    def per(self, count: int) -> Timing:
        """The same timing divided by ``count`` (per image, per item)."""
        return Timing(self.cpu_s / count, self.wall_s / count, self.rounds)


def best_of_rounds(methods: Mapping[str, Callable[[], object]], rounds: int) -> dict[str, Timing]:
    """Run every method once per round, interleaved; keep each one's best CPU and best wall time.

    Interleaving spreads a burst of outside load over all methods instead of one. CPU time is
    this thread's (``time.thread_time``): work a method hands to other threads is not counted,
    so methods should run on the calling thread.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    cpu: dict[str, list[float]] = {name: [] for name in methods}
    wall: dict[str, list[float]] = {name: [] for name in methods}
    for round_index in range(rounds):
        for name, method in methods.items():
            started_cpu, started_wall = time.thread_time(), time.perf_counter()
            method()
            cpu[name].append(time.thread_time() - started_cpu)
            wall[name].append(time.perf_counter() - started_wall)
            log.info(
                "round %d/%d %-24s %.3f s CPU, %.3f s wall",
                round_index + 1,
                rounds,
                name,
                cpu[name][-1],
                wall[name][-1],
            )
    return {name: Timing(min(cpu[name]), min(wall[name]), rounds) for name in methods}


def best_run(runs: Sequence[dict[str, Any]], key: str = "images_per_second") -> dict[str, Any] | None:
    """The run with the highest ``key`` (the best of repeated end-to-end runs), or None."""
    return max(runs, key=lambda run: run[key]) if runs else None
