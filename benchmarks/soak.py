"""Soak the download job: 10 000 and 100 000 URLs, 30 % failures of every kind, every row checked.

    .venv/bin/python benchmarks/soak.py [--rows 10000,100000] [--samples-per-shard 10000]

Each size runs ``spark-submit --master local[2] jobs/download.py`` against a loopback server that
makes every response up on the fly (testkit/soak_server.py: 404, 410, 500, 503 with
Retry-After, timeouts, resets, truncated bodies, slow drip, wrong content type, corrupt and
undecodable images, X-Robots-Tag opt-outs, URLs robots.txt disallows or tdmrep.json reserves,
spread over 16 loopback hosts), with a job-wide per-host budget (--host-concurrency 8,
--per-host-rps 20). Then every output row is compared with what its fault implies, and the
server's politeness figures with the budget (testkit/soak.py). Prints one line per size and
writes benchmarks/_work/soak_results.json; exits 1 if any promise was broken. Nothing leaves the
machine. tests/download/test_soak.py runs the same harness at CI size.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from harness.paths import WORK, shown
from harness.table import text_table

from pipeline.logs import setup_logging
from testkit.soak import SoakConfig, problems, run_soak

RESULTS = WORK / "soak_results.json"


def format_report(results: list[dict[str, Any]]) -> str:
    """One line per list size: time, rows lost or wrong, worker memory, per-host load, retry gap."""
    columns = ("rows", "seconds", "rows/s", "fail %", "success", "lost", "wrong", "worker MB")
    columns += ("host max", "host req/5 s max", "robots.txt / host", "retry gap", "problems")
    rows = [
        (
            r["rows"],
            f"{r['seconds']:.1f}",
            f"{r['rows_per_second']:.1f}",
            f"{100 * r['failure_fraction']:.1f}",
            r["status"].get("success", 0),
            r["missing_rows"] + r["repeated_rows"],
            r["wrong_status"],
            r["peak_python_worker_mb"],
            f"{r['max_in_flight_per_host']}/{r['per_host_cap']}",
            f"{r['most_requests_in_5s']}/{5 * r['per_host_rps']:g}",
            r["robots_fetches_per_host"],
            f"{r['retry_after']['min'] or 0:.2f}",
            "; ".join(r["problems"]) or "none",
        )
        for r in results
    ]
    return text_table(columns, rows, align="r" * 12 + "l")


def main(argv: list[str] | None = None) -> int:
    """Soak every size asked for; print the report; exit 1 if any promise was broken."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--rows", default="10000,100000", help="comma-separated list sizes to run")
    parser.add_argument("--samples-per-shard", type=int, default=10_000, help="input rows per shard")
    parser.add_argument("--failure-fraction", type=float, default=0.3, help="share of faulty URLs")
    parser.add_argument("--hosts", type=int, default=16, help="loopback hosts the server listens on")
    parser.add_argument("--timeout", type=float, default=3.0, help="client deadline per attempt, seconds")
    parser.add_argument("--host-concurrency", type=int, default=8, help="job-wide in flight per host")
    parser.add_argument("--per-host-rps", type=float, default=20.0, help="job-wide requests/s per host")
    parser.add_argument("--workdir", type=Path, default=WORK / "soak", help="scratch folder")
    args = parser.parse_args(argv)
    setup_logging()
    results = []
    for rows in (int(r) for r in args.rows.split(",") if r.strip()):
        config = SoakConfig(
            rows=rows,
            samples_per_shard=args.samples_per_shard,
            failure_fraction=args.failure_fraction,
            hosts=args.hosts,
            timeout=args.timeout,
            host_concurrency=args.host_concurrency,
            per_host_rps=args.per_host_rps,
        )
        report = run_soak(config, args.workdir / str(rows))
        report["problems"] = problems(report)
        results.append(report)
        RESULTS.write_text(json.dumps(results, indent=2))
    print(format_report(results))
    print(f"(raw: {shown(RESULTS)})")
    return 1 if any(r["problems"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
