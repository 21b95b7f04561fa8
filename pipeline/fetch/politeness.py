"""Per-host politeness inside one task, and this task's share of the job's per-host budget.

:class:`HostGate` is what every request to one host passes through: a cap on requests in flight,
a minimum interval between request starts (the task's share of ``--per-host-rps``), and adaptive
backoff: a 429 without ``Retry-After`` doubles the interval (from ``--backoff-base``, at most
:data:`MAX_ADAPTIVE_INTERVAL`), a 429 with one pauses the host for that long, and every other
answer shrinks a raised interval by :data:`RECOVERY` until it is back at the configured one. The
pacing (:class:`HostPace`) is kept per executor process, across its tasks; the in-flight cap is
per task.

:class:`HostShares` says how many tasks may reach a host at once, so that the job-wide budget
(``--host-concurrency``, ``--per-host-rps``) can be divided among them: a host found in only
this task's shard gets all of it; a host the input shards share gets its budget divided by the
number of shards that hold it (at most the number of tasks that run at once); a host this
task only reaches through redirects is assumed to be reached by every task.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from urllib.parse import urlsplit

MAX_ADAPTIVE_INTERVAL = 10.0  # seconds between request starts to a host that keeps answering 429
RECOVERY = 0.9  # a raised interval is multiplied by this after each answer that is not a 429
_NEGLIGIBLE = 0.001  # an adaptive interval below this (with no configured rate) is dropped


def host_of(url: str) -> str:
    """The host key of ``url`` as the fetcher spells it (lower-case ASCII, IDNA), '' if none."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return ""
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return host
    return host


class HostPace:
    """When requests to a host may start, and the interval in force (kept per process, across
    tasks, so that a host slowed down by 429s stays slowed down for the next task)."""

    __slots__ = ("floor", "interval", "last_send", "next_start", "paused_until")

    def __init__(self, floor: float = 0.0) -> None:
        self.floor = floor  # the configured interval (1 / this task's rate), 0: none
        self.interval = floor  # the interval in force (raised by 429s)
        self.next_start = -1e18  # the next free turn (reservations)
        self.last_send = -1e18  # when the last request went out
        self.paused_until = -1e18

    def configure(self, floor: float) -> None:
        """A new task's configured interval; an interval raised by 429s stays raised."""
        raised = self.interval > self.floor
        self.floor = floor
        self.interval = max(floor, self.interval) if raised else floor


class HostGate:
    """Requests to one host in one task: ``async with gate:`` around each attempt, and
    :meth:`claim` right before its request goes out."""

    __slots__ = ("_clock", "_slots", "cap", "pace")

    def __init__(
        self, cap: int, pace: HostPace | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """``cap`` requests in flight; starts spaced by ``pace`` (default: a fresh one, no interval)."""
        self.cap = cap
        self._slots = asyncio.Semaphore(cap)
        self.pace = pace if pace is not None else HostPace()
        self._clock = clock

    @property
    def interval(self) -> float:
        return self.pace.interval

    @property
    def floor(self) -> float:
        return self.pace.floor

    async def __aenter__(self) -> HostGate:
        await self._slots.acquire()
        try:
            await self.wait_turn()
        except BaseException:
            self._slots.release()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._slots.release()

    async def wait_turn(self) -> None:
        """Take the next turn and wait for it (turns are spaced by the interval, after any pause).

        Called holding a slot, before the deadline runs: the waiting is done here.
        """
        pace = self.pace
        now = self._clock()
        start = max(now, pace.next_start, pace.paused_until)
        if pace.interval <= 0 and start <= now:
            return
        pace.next_start = start + pace.interval
        if start > now:
            await asyncio.sleep(start - now)

    async def claim(self) -> None:
        """Right before a request goes out: at least the interval after the last one went out.

        Turns are spaced, but an event loop held up (an image decoded on its thread, a
        connection being opened) can wake several turns' requests together; the check and the
        claim here have no await between them, so requests still go out one interval apart.
        """
        pace = self.pace
        while True:
            now = self._clock()
            ready = pace.last_send + pace.interval
            if now >= ready:
                pace.last_send = now
                return
            await asyncio.sleep(ready - now)

    def pause(self, seconds: float) -> None:
        """No request starts for ``seconds`` (the host answered 429 with a ``Retry-After``)."""
        self.pace.paused_until = max(self.pace.paused_until, self._clock() + seconds)

    def throttled(self, base: float) -> None:
        """The host answered 429 without ``Retry-After``: double the interval (at least ``base``)."""
        pace = self.pace
        pace.interval = min(MAX_ADAPTIVE_INTERVAL, max(2 * pace.interval, base, pace.floor))
        self.pause(pace.interval)

    def answered(self) -> None:
        """The host answered something other than 429: a raised interval comes down a step."""
        pace = self.pace
        if pace.interval > pace.floor:
            lower = pace.interval * RECOVERY
            pace.interval = pace.floor if lower <= pace.floor or lower < _NEGLIGIBLE else lower


class HostShares:
    """How many tasks may reach each host at once (the divisor of the job-wide budget)."""

    def __init__(self, tasks: int = 1, spread: Mapping[str, int] | None = None) -> None:
        """``tasks``: tasks that run at once; ``spread``: input shards holding each host found in
        more than one (hosts not in it are in one shard only)."""
        self.tasks = max(1, tasks)
        self.spread = spread or {}

    def for_task(self, own_hosts: Iterable[str]) -> Callable[[str], int]:
        """``share(host)`` for a task whose rows have ``own_hosts``."""
        tasks, spread = self.tasks, self.spread
        if tasks == 1:
            return lambda host: 1
        own = frozenset(own_hosts)

        def share(host: str) -> int:
            if host not in own:
                return tasks  # reached through a redirect: any task may do the same
            return min(tasks, spread.get(host, 1))

        return share


def task_limits(
    share: int, per_task_cap: int, job_cap: int, job_rps: float
) -> tuple[int, float]:
    """(requests in flight, seconds between starts) for one task's gate to a host reached by
    ``share`` tasks: the per-task cap, lowered to the job cap's share (at least 1); the job
    rate divided likewise (0: no interval)."""
    cap = per_task_cap if job_cap <= 0 else max(1, min(per_task_cap, job_cap // share))
    interval = share / job_rps if job_rps > 0 else 0.0
    return cap, interval
