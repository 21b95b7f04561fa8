"""The job-wide per-host budget: how many tasks may reach each host at once, worked out on the driver.

With ``--host-concurrency`` or ``--per-host-rps`` set, each task's share of a host's budget is the
budget divided by the number of tasks that can reach the host at the same time: the number of
input shards holding the host, at most the number of tasks running at once
(:class:`pipeline.fetch.politeness.HostShares`). The shards holding each host are counted once
per input (``_input/_host_spread.json``, only hosts found in more than one shard; counted again
when shards are added), on the driver for lists of up to :data:`DRIVER_LIMIT` rows, with Spark
above. ``--group-hosts`` makes those counts small (:mod:`pipeline.download.host_grouping`).

The in-flight cap holds job-wide when a host's budget is at least the number of tasks that can
reach it (each task keeps at least one connection); the rate always does (rates divide).
"""

from __future__ import annotations

import logging
import operator
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pipeline.dataset import Dataset
from pipeline.download.options import DownloadOptions
from pipeline.fetch.politeness import HostShares, host_of

log = logging.getLogger(__name__)

DRIVER_LIMIT = 2_000_000  # rows; above it the hosts are counted with Spark


@dataclass(frozen=True)
class HostBudget:
    """What the tasks need to work out their shares: tasks at once, and the spread file."""

    tasks: int
    spread_file: tuple[str, str] | None = None

    def shares(self, dataset: Dataset) -> HostShares:
        """The shares (reads the spread file: once per executor process, in the step's setup)."""
        if self.spread_file is None or self.tasks <= 1:
            return HostShares(self.tasks)
        return HostShares(self.tasks, dataset.storage.read_json(*self.spread_file)["hosts"])


def plan_host_budget(executor: Any, dataset: Dataset, manifest: dict[str, Any], options: DownloadOptions) -> (
    HostBudget | None
):
    """The budget's plan for this run (None without a job-wide budget: nothing is counted)."""
    politeness = options.fetch.politeness
    if not politeness.job_wide:
        return None
    shard_count = manifest["shard_count"]
    tasks = min(max(1, shard_count), politeness.concurrent_tasks or parallel_tasks(executor, options))
    if tasks <= 1:
        return HostBudget(1)
    spread_file = dataset.input.host_spread_file
    recorded = dataset.storage.read_json_if_exists(*spread_file)
    if recorded is None or recorded.get("shard_count") != shard_count:
        spread = count_spread(executor, dataset, shard_count, manifest["rows"])
        dataset.storage.write_json({"shard_count": shard_count, "hosts": spread}, *spread_file)
    else:
        spread = recorded["hosts"]
    widest = max(spread.values(), default=1)
    log.info(
        "per-host budget: %d tasks at once; %d hosts are in more than one input shard (at most %d)",
        tasks,
        len(spread),
        widest,
    )
    job_cap = politeness.host_concurrency
    if job_cap and min(widest, tasks) > job_cap:
        crowded = sum(1 for n in spread.values() if min(n, tasks) > job_cap)
        log.warning(
            "--host-concurrency %d cannot hold for %d hosts that up to %d tasks reach at once (each "
            "keeps one connection); --group-hosts puts each host's rows in fewer shards",
            job_cap,
            crowded,
            min(widest, tasks),
        )
    return HostBudget(tasks, spread_file)


def parallel_tasks(executor: Any, options: DownloadOptions) -> int:
    """Download tasks that can run at once: Spark's default parallelism over the cores a task takes
    (local mode runs one core per task)."""
    context = getattr(executor, "context", None)
    cores = int(context.defaultParallelism) if context is not None else 1
    local = bool(getattr(executor, "local", True))
    per_task = 1 if local else max(1, options.decode_threads)
    return max(1, cores // per_task)


def shard_hosts(dataset: Dataset, shard: int) -> set[str]:
    """The hosts of one input shard's fetchable rows."""
    table = dataset.input.shard(shard).table_file.read(columns=["url", "ingest_error"])
    urls = table.column("url").to_pylist()
    errors = table.column("ingest_error").to_pylist()
    return {host_of(url) for url, error in zip(urls, errors, strict=True) if error is None and url}


def count_spread(executor: Any, dataset: Dataset, shard_count: int, rows: int) -> dict[str, int]:
    """Input shards holding each host, for the hosts in more than one."""
    if rows <= DRIVER_LIMIT:
        counts: Counter[str] = Counter()
        for shard in range(shard_count):
            counts.update(shard_hosts(dataset, shard))
        return {host: n for host, n in sorted(counts.items()) if n > 1}

    def hosts(shard: int) -> Iterator[tuple[str, int]]:
        return ((host, 1) for host in shard_hosts(dataset, shard))

    pairs = executor.flat_map(range(shard_count), hosts).reduceByKey(operator.add)
    return dict(sorted(pairs.filter(lambda pair: pair[1] > 1).collect()))
