"""Options of what the fetcher owes hosts and rights holders: opt-outs, block lists, politeness.

Two sections of :class:`pipeline.fetch.options.FetchOptions` (``--help`` groups "opt-outs" and
"politeness"); docs/download.md explains each.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.cli_options import option
from pipeline.errors import UserInputError

TDMREP_MODES = ("file", "header", "off")


@dataclass(frozen=True)
class OptOutOptions:
    """robots.txt, TDMRep and offline block lists."""

    robots_txt: bool = option(
        True,
        negate="--no-robots-txt",
        help="do not read robots.txt (by default each host's robots.txt is fetched once per executor "
        "process and URLs it disallows for 'corpusforge' or '*' are not requested: robots_disallowed)",
    )
    robots_ttl: float = option(
        86400.0,
        metavar="SECONDS",
        help="how long a host's robots.txt and tdmrep.json stay cached per executor process "
        "(failures: at most 300 s)",
    )
    tdmrep: str = option(
        "file",
        choices=TDMREP_MODES,
        help="TDM Reservation Protocol: 'file' reads each host's /.well-known/tdmrep.json and the "
        "tdm-reservation response header, 'header' only the header, 'off' neither (reserved: tdm_reserved)",
    )
    block_lists: tuple[str, ...] = option(
        (),
        flag="--block-list",
        repeat=True,
        metavar="FILE",
        help="file of url:, domain:, sha256: and phash: entries never fetched or stored (any fsspec URL, "
        "read by every executor)",
    )
    block_phash_distance: int = option(
        0, help="a pHash within this many bits of a --block-list phash entry is blocked"
    )

    def __post_init__(self) -> None:
        if self.robots_ttl <= 0:
            raise UserInputError(f"--robots-ttl must be > 0, got {self.robots_ttl}")
        if self.tdmrep not in TDMREP_MODES:
            raise UserInputError(f"--tdmrep must be one of {', '.join(TDMREP_MODES)}, got {self.tdmrep!r}")
        if not 0 <= self.block_phash_distance <= 32:
            raise UserInputError(f"--block-phash-distance must be in 0..32, got {self.block_phash_distance}")


@dataclass(frozen=True)
class PolitenessOptions:
    """The per-host budget of the whole job, and backoff when a host says it is overloaded."""

    host_concurrency: int = option(
        0,
        help="requests in flight to one host across the whole job, shared among the tasks that can "
        "reach it at once (each keeps at least 1, and at most --per-host-concurrency); "
        "0: only --per-host-concurrency, per task",
    )
    per_host_rps: float = option(
        0.0,
        metavar="RPS",
        help="requests per second to one host across the whole job, shared likewise (0: no limit)",
    )
    adaptive_backoff: bool = option(
        True,
        negate="--no-adaptive-backoff",
        help="do not slow down a host that answers 429 (by default a 429 without Retry-After doubles "
        "the gap between requests to that host, a 429 with one pauses the host, and the gap comes "
        "back down gradually)",
    )
    group_hosts: int = option(
        0,
        metavar="SHARDS",
        help="new datasets: reorder the list in windows of this many input shards so that each host's "
        "rows are together (fewer tasks share a host; row_index then counts the new order); 0: list order",
    )
    concurrent_tasks: int = option(
        0,
        help="download tasks assumed to run at once when sharing the per-host budget (0: Spark's "
        "default parallelism, divided by --decode-threads)",
    )

    def __post_init__(self) -> None:
        for name in ("host_concurrency", "group_hosts", "concurrent_tasks"):
            if getattr(self, name) < 0:
                raise UserInputError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        if self.per_host_rps < 0:
            raise UserInputError(f"--per-host-rps must be >= 0, got {self.per_host_rps}")

    @property
    def job_wide(self) -> bool:
        """Whether a job-wide budget is set (the driver then works out each host's share)."""
        return self.host_concurrency > 0 or self.per_host_rps > 0
