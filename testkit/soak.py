"""Soak run of the download job: a large URL list, 30 % failures of every kind, checked row by row.

:func:`run_soak` writes a URL list of ``rows`` rows pointing at a :class:`SoakServer`, runs
``spark-submit jobs/download.py`` on it, samples the peak memory of the job's Python processes
while it runs, and checks the outputs: every input row exactly once with the status its fault
implies, status counts adding up, every success once in the tars, no opted-out image stored, no
request for what robots.txt or tdmrep.json forbids, and the server's politeness figures (requests
in flight per host against the job-wide ``--host-concurrency``, requests per second per host
against ``--per-host-rps``, robots.txt fetches per host, waits after ``Retry-After``). A
quarter of the hosts (``https_hosts``) serve over https with a test CA passed as ``--ca-bundle``,
faults and all, so every promise is checked over TLS too.
Used by tests/download/test_soak.py (CI size) and benchmarks/soak.py (100 000 rows).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import subprocess
import sys
import tarfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.submit import spark_submit_command
from testkit.soak_server import NEVER_REQUESTED, RETRY_AFTER_SECONDS, SOAK_FAULTS, SoakServer
from testkit.tls import LocalCA

log = logging.getLogger(__name__)

# What each server behaviour must turn into: (status, error class).
EXPECTED: dict[str, tuple[str, str | None]] = {
    "ok": ("success", None),
    "404": ("failed", "http_error"),
    "410": ("failed", "http_error"),
    "500": ("failed", "http_error"),
    "503_retry_after": ("success", None),  # retried after the server's Retry-After
    "reset": ("failed", "connection_reset"),
    "truncated": ("failed", "truncated"),
    "wrong_type": ("failed", "bad_content_type"),
    "corrupt": ("failed", "undecodable"),
    "undecodable": ("failed", "undecodable"),
    "optout": ("failed", "opted_out"),
    "noml": ("failed", "opted_out"),
    "robots": ("failed", "robots_disallowed"),
    "tdm": ("failed", "tdm_reserved"),
    "timeout": ("failed", "timeout"),
    "slow_drip": ("failed", "timeout"),
}
MARKER = "CORPUSFORGE_SOAK_RUN"
_KINDS = [kind for kind, weight in SOAK_FAULTS.items() for _ in range(weight)]


@dataclass(frozen=True)
class SoakConfig:
    """Size and settings of one soak run."""

    rows: int
    failure_fraction: float = 0.3
    hosts: int = 16
    samples_per_shard: int = 1000
    timeout: float = 3.0  # client deadline per attempt; the server stalls 3x longer
    retries: int = 1
    concurrency: int = 64
    per_host_concurrency: int = 8
    # The job-wide per-host budget: 8 in flight (4 for each of the 2 tasks, every host being in
    # every shard) and 20 requests a second.
    host_concurrency: int = 8
    per_host_rps: float = 20.0
    master: str = "local[2]"
    parallel_tasks: int = 2  # Spark tasks running at once (cores of the master)
    seed: int = 0
    # The first hosts serve over https with a test CA the job trusts through --ca-bundle: 4 of 16
    # hosts, so a quarter of the rows, faults included.
    https_hosts: int = 4


def fault_of(index: int, config: SoakConfig) -> str:
    """The server behaviour of row ``index`` (deterministic): ``ok`` or a fault kind."""
    digest = hashlib.blake2b(f"{config.seed}:{index}".encode(), digest_size=8).digest()
    value = int.from_bytes(digest, "big")
    if (value % 1_000_000) / 1_000_000 >= config.failure_fraction:
        return "ok"
    return _KINDS[(value >> 32) % len(_KINDS)]


def is_https(index: int, config: SoakConfig) -> bool:
    """Whether row ``index`` is fetched over https (as :meth:`SoakServer.host` hands it out)."""
    return 1 + index % config.hosts <= config.https_hosts


def write_soak_list(path: Path, config: SoakConfig, server: SoakServer) -> Path:
    """A parquet URL list (``url``, ``caption``) of ``config.rows`` rows, written in bounded batches."""
    schema = pa.schema([("url", pa.string()), ("caption", pa.string())])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, config.rows, 50_000):
            stop = min(config.rows, start + 50_000)
            urls = [f"{server.host(i)}/{fault_of(i, config)}/{i}.jpg" for i in range(start, stop)]
            captions = [f"soak image number {i}" for i in range(start, stop)]
            writer.write_table(pa.table({"url": urls, "caption": captions}, schema=schema))
    return path


class MemorySampler:
    """Samples the peak RSS (VmHWM) of the run's Python workers and driver from /proc."""

    def __init__(self, marker: str, interval: float = 0.5) -> None:
        self.marker = f"{MARKER}={marker}".encode()
        self.interval = interval
        self.peaks: dict[int, tuple[str, int]] = {}  # pid -> (role, peak kB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="memory-sampler", daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError, ValueError):
                if self.marker not in (entry / "environ").read_bytes().split(b"\0"):
                    continue
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
                if b"pyspark.daemon" in cmdline:
                    role = "python_worker"
                elif b"jobs/download.py" in cmdline and b"java" not in cmdline.split(b" ", 1)[0]:
                    role = "python_driver"
                else:
                    continue
                status = (entry / "status").read_text()
                peak = int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1])
                pid = int(entry.name)
                self.peaks[pid] = (role, max(peak, self.peaks.get(pid, (role, 0))[1]))

    def peak_mb(self, role: str) -> float | None:
        values = [kb for r, kb in self.peaks.values() if r == role]
        return round(max(values) / 1024, 1) if values else None


def run_soak(config: SoakConfig, workdir: Path) -> dict[str, Any]:
    """Serve, download and check one soak run; return the report (see :func:`check_outputs`)."""
    workdir.mkdir(parents=True, exist_ok=True)
    dataset = workdir / "dataset"
    marker = uuid.uuid4().hex
    ca = LocalCA()
    bundle = ca.write_bundle(workdir / "ca.pem")
    addresses = [f"127.0.0.{h}" for h in range(1, config.https_hosts + 1)]
    tls = ca.write_server_files(workdir, *addresses) if config.https_hosts else None
    with SoakServer(config.hosts, 3 * config.timeout, tls, config.https_hosts) as server:
        urls = write_soak_list(workdir / "urls.parquet", config, server)
        args = [
            "--urls", str(urls),
            "--dataset", str(dataset),
            "--overwrite",
            "--allow-network", "127.0.0.0/8",  # the server's hosts are 127.0.0.1..N
            "--samples-per-shard", str(config.samples_per_shard),
            "--timeout", str(config.timeout),
            "--connect-timeout", str(config.timeout),
            "--retries", str(config.retries),
            "--max-retry-wait", str(4 * RETRY_AFTER_SECONDS),
            "--concurrency", str(config.concurrency),
            "--per-host-concurrency", str(config.per_host_concurrency),
            "--host-concurrency", str(config.host_concurrency),
            "--per-host-rps", str(config.per_host_rps),
            "--concurrent-tasks", str(config.parallel_tasks),
            "--resize-mode", "no",  # the images are small; the soak is about the network side
            "--ca-bundle", str(bundle),  # the https hosts' CA
            "--proxy", "none",  # loopback only, whatever proxy the environment names
        ]  # fmt: skip
        env = {
            **os.environ,
            MARKER: marker,
            "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable),
            "SPARK_LOCAL_IP": "127.0.0.1",
        }
        started = time.monotonic()
        with MemorySampler(marker) as memory, open(workdir / "job.log", "wb") as job_log:
            code = subprocess.run(
                spark_submit_command("download", args, master=config.master),
                env=env,
                stdout=job_log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                check=False,
            ).returncode
        seconds = time.monotonic() - started
        server_stats = server.stats()
    if code != 0:
        tail = (workdir / "job.log").read_text(errors="replace")[-5000:]
        raise RuntimeError(f"the download job failed with exit code {code}:\n{tail}")
    report = check_outputs(dataset, config, server_stats)
    report.update(
        config=asdict(config),
        seconds=round(seconds, 1),
        rows_per_second=round(config.rows / seconds, 1),
        peak_python_worker_mb=memory.peak_mb("python_worker"),
        peak_python_driver_mb=memory.peak_mb("python_driver"),
    )
    return report


def check_outputs(dataset: Path, config: SoakConfig, server_stats: dict[str, Any]) -> dict[str, Any]:
    """Compare every output row with what its fault implies; count what is stored and how."""
    columns = ["uid", "row_index", "status", "error_class"]
    tables = [pq.read_table(f, columns=columns) for f in sorted((dataset / "raw").glob("*.parquet"))]
    table = pa.concat_tables(tables) if tables else pa.table({c: [] for c in columns})
    rows = table.to_pydict()
    seen = Counter(rows["row_index"])
    wrong: list[dict[str, Any]] = []
    statuses: Counter[str] = Counter()
    by_fault: Counter[str] = Counter()
    optout_uids: set[str] = set()
    success_uids: set[str] = set()
    https: Counter[str] = Counter()
    for uid, index, status, error in zip(
        rows["uid"], rows["row_index"], rows["status"], rows["error_class"], strict=True
    ):
        fault = fault_of(index, config)
        by_fault[fault] += 1
        statuses[status] += 1
        if is_https(index, config):
            https[status] += 1
        if (status, error) != EXPECTED[fault]:
            wrong.append({"row": index, "fault": fault, "status": status, "error_class": error})
        if fault in ("optout", "noml"):
            optout_uids.add(uid)
        if status == "success":
            success_uids.add(uid)
    members: Counter[str] = Counter()
    for path in sorted((dataset / "raw").glob("*.tar")):
        with tarfile.open(path) as tar:
            members.update(name.split(".")[0] for name in tar.getnames())
    max_in_flight = max(server_stats["max_in_flight_per_host"].values(), default=0)
    site_files = server_stats["site_files"]
    robots_fetches = [n for key, n in site_files.items() if key.endswith(" /robots.txt")]
    windows = server_stats["most_requests_per_host"]
    return {
        "rows": config.rows,
        "output_rows": len(rows["row_index"]),
        "missing_rows": config.rows - len(seen),
        "repeated_rows": sum(n - 1 for n in seen.values() if n > 1),
        "unknown_rows": sum(1 for i in seen if not 0 <= i < config.rows),
        "wrong_status": len(wrong),
        "wrong_examples": wrong[:10],
        "status": dict(statuses),
        "faults": dict(by_fault),
        "failure_fraction": round(1 - by_fault["ok"] / max(1, config.rows), 4),
        "stored_samples": len(members),
        "stored_not_success": len(set(members) - success_uids),
        "success_not_stored": len(success_uids - set(members)),
        "tar_members_not_three": sum(1 for n in members.values() if n != 3),
        "optout_stored": len(optout_uids & set(members)),
        "optout_served": len(server_stats["optout_served"]),
        "max_in_flight_per_host": max_in_flight,
        "per_host_cap": config.host_concurrency or config.per_host_concurrency * config.parallel_tasks,
        # The most requests to one host within 1 s and within 5 s, as the server saw them.
        "most_requests_in_1s": max(windows["1s"].values(), default=0),
        "most_requests_in_5s": max(windows["5s"].values(), default=0),
        "per_host_rps": config.per_host_rps,
        "parallel_tasks": config.parallel_tasks,
        "forbidden_requested": sum(server_stats["requests"].get(kind, 0) for kind in NEVER_REQUESTED),
        "robots_fetches_per_host": max(robots_fetches, default=0),
        "robots_hosts": len(robots_fetches),
        "retry_after": server_stats["retry_gaps"],
        "retry_after_unanswered": server_stats["retry_after_unanswered"],
        "server_requests": server_stats["requests"],
        "https_rows": sum(https.values()),
        "https_successes": https["success"],
        "server_tls_requests": server_stats["tls_requests"],
    }


def rate_bound(rps: float, tasks: int, seconds: float = 5.0) -> float:
    """The most requests a host may see within ``seconds`` under ``--per-host-rps``: the rate,
    plus one request at each end of the window for each process (a request paced just outside
    the window can arrive just inside it: the server's own delays move arrivals by milliseconds)."""
    return rps * seconds + 2 * tasks


def problems(report: dict[str, Any]) -> list[str]:
    """What is wrong in a soak report (empty when the run held every promise)."""
    found = []
    for key in ("missing_rows", "repeated_rows", "unknown_rows", "wrong_status", "stored_not_success"):
        if report[key]:
            found.append(f"{key}: {report[key]}")
    for key in ("success_not_stored", "tar_members_not_three", "optout_stored"):
        if report[key]:
            found.append(f"{key}: {report[key]}")
    if sum(report["status"].values()) != report["rows"]:
        found.append(f"status counts {report['status']} do not add up to {report['rows']}")
    if report["max_in_flight_per_host"] > report["per_host_cap"]:
        found.append(f"{report['max_in_flight_per_host']} requests in flight to one host")
    tasks = report["parallel_tasks"]
    if report["per_host_rps"] and report["most_requests_in_5s"] > rate_bound(report["per_host_rps"], tasks):
        found.append(f"{report['most_requests_in_5s']} requests to one host within 5 s")
    if report["forbidden_requested"]:
        found.append(f"{report['forbidden_requested']} requests for URLs robots.txt or tdmrep.json forbid")
    # robots.txt: once per host and executor process (one Python worker per task slot).
    if report["robots_fetches_per_host"] > tasks + 1:
        found.append(f"robots.txt fetched {report['robots_fetches_per_host']} times from one host")
    if report["https_rows"] and not (report["https_successes"] and report["server_tls_requests"]):
        found.append(f"{report['https_rows']} https rows, but none fetched over TLS")
    gaps = report["retry_after"]
    if gaps["count"] and gaps["min"] < RETRY_AFTER_SECONDS:
        found.append(f"a retry came {gaps['min']:.2f}s after Retry-After: {RETRY_AFTER_SECONDS}")
    return found
