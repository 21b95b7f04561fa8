"""Soak: a CI-sized URL list with 30 % failures of every kind, checked row by row (slow).

The full 100 000-row run is ``benchmarks/soak.py`` (see docs/reliability.md); this test runs the
same harness at 2 000 and 8 000 rows so it fits in CI on two cores (about 1.5 minutes).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from testkit.soak import RETRY_AFTER_SECONDS, SoakConfig, is_https, problems, rate_bound, run_soak
from testkit.soak_server import NEVER_REQUESTED, SOAK_FAULTS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="Linux /proc"),
]

# The small run has two shards, one per worker, so both workers are past their warm-up (their first
# shard fills the fetcher's caches and connection pools): with one shard of 1,000 rows the small
# run peaked at 141 MB against 183 MB for 10,000 rows, a warm-up, not growth with the list
# (benchmarks/soak.py: 10,000 -> 100,000 rows, +1.8 %).
SMALL, LARGE = 2_000, 8_000
SHARD = 1_000  # the same shard size for both, so a worker's memory can only grow with the list


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[int, dict]:
    return {
        rows: run_soak(SoakConfig(rows=rows, samples_per_shard=SHARD), tmp_path_factory.mktemp(f"soak{rows}"))
        for rows in (SMALL, LARGE)
    }


@pytest.mark.parametrize("rows", [SMALL, LARGE])
def test_every_row_once_with_the_status_its_fault_implies(reports: dict[int, dict], rows: int) -> None:
    report = reports[rows]
    assert problems(report) == [], report
    assert report["output_rows"] == rows and report["missing_rows"] == report["repeated_rows"] == 0
    assert sum(report["status"].values()) == rows
    # 30 % failures, every fault kind present, each failure class seen.
    assert 0.27 <= report["failure_fraction"] <= 0.33
    assert set(report["faults"]) == {"ok", *SOAK_FAULTS}
    assert set(report["server_requests"]) == {"ok", *SOAK_FAULTS} - set(NEVER_REQUESTED)
    assert report["stored_samples"] == report["status"]["success"]
    # A quarter of the hosts serve https (the test CA via --ca-bundle): the same outcomes over TLS.
    assert report["https_rows"] == sum(is_https(i, SoakConfig(rows=rows)) for i in range(rows)) > rows // 5
    assert report["server_tls_requests"] >= report["https_successes"] > 0


def test_politeness_measured_at_the_server(reports: dict[int, dict]) -> None:
    report = reports[LARGE]
    config = SoakConfig(rows=LARGE)
    # The job-wide cap (--host-concurrency 8) held at every host, although each of the 2 tasks
    # could open --per-host-concurrency 8 on its own.
    per_task_caps = config.per_host_concurrency * config.parallel_tasks
    assert report["per_host_cap"] == config.host_concurrency < per_task_caps
    assert 0 < report["max_in_flight_per_host"] <= report["per_host_cap"]
    # --per-host-rps 20 across the job: each process sends one request to a host every 0.1 s at most.
    assert 0 < report["most_requests_in_5s"] <= rate_bound(config.per_host_rps, config.parallel_tasks)
    gaps = report["retry_after"]
    assert gaps["count"] == report["faults"]["503_retry_after"] and report["retry_after_unanswered"] == 0
    assert gaps["min"] >= RETRY_AFTER_SECONDS
    served = report["faults"]["optout"] + report["faults"]["noml"]
    assert report["optout_served"] == served and report["optout_stored"] == 0
    # robots.txt and tdmrep.json: fetched by every host's first process, at most once per process;
    # what they forbid was never requested.
    assert report["robots_hosts"] == config.hosts
    assert 1 <= report["robots_fetches_per_host"] <= config.parallel_tasks + 1
    assert report["forbidden_requested"] == 0


def test_worker_memory_stays_flat_as_the_list_grows(reports: dict[int, dict]) -> None:
    small, large = reports[SMALL]["peak_python_worker_mb"], reports[LARGE]["peak_python_worker_mb"]
    assert small and large
    # Four times the rows (and four times the shards through the same reused workers): the same peak.
    assert large <= small * 1.2 + 10, (small, large)
