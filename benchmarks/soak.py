"""Soak the download job: 10 000 and 100 000 URLs, 30 % failures of every kind, every row checked.

    .venv/bin/python benchmarks/soak.py [--rows 10000,100000] [--samples-per-shard 10000]

Each size runs ``spark-submit --master local[2] jobs/download.py`` against a loopback server that
makes every response up on the fly (pipeline/synthetic/soak_server.py: 404, 410, 500, 503 with
Retry-After, timeouts, resets, truncated bodies, slow drip, wrong content type, corrupt and
undecodable images, X-Robots-Tag opt-outs, spread over 16 loopback hosts). Then every output row
is compared with what its fault implies (pipeline/synthetic/soak.py). Prints one line per size and
writes benchmarks/_work/soak_results.json; exits 1 if any promise was broken. Nothing leaves the
machine. tests/download/test_soak.py runs the same harness at CI size.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from pipeline.synthetic.soak import SoakConfig, problems, run_soak

WORK = Path(__file__).resolve().parent / "_work"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--rows", default="10000,100000", help="comma-separated list sizes to run")
    parser.add_argument("--samples-per-shard", type=int, default=10_000, help="input rows per shard")
    parser.add_argument("--failure-fraction", type=float, default=0.3, help="share of faulty URLs")
    parser.add_argument("--hosts", type=int, default=16, help="loopback hosts the server listens on")
    parser.add_argument("--timeout", type=float, default=3.0, help="client deadline per attempt, seconds")
    parser.add_argument("--workdir", type=Path, default=WORK / "soak", help="scratch folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    results = []
    for rows in (int(r) for r in args.rows.split(",")):
        config = SoakConfig(
            rows=rows,
            samples_per_shard=args.samples_per_shard,
            failure_fraction=args.failure_fraction,
            hosts=args.hosts,
            timeout=args.timeout,
        )
        report = run_soak(config, args.workdir / str(rows))
        report["problems"] = problems(report)
        results.append(report)
        (WORK / "soak_results.json").write_text(json.dumps(results, indent=2))
    print(f"{'rows':>8} {'seconds':>8} {'rows/s':>7} {'fail %':>6} {'success':>8} {'lost':>5} "
          f"{'wrong':>6} {'worker MB':>9} {'host max':>8} {'retry gap':>9}  problems")  # fmt: skip
    for r in results:
        lost = r["missing_rows"] + r["repeated_rows"]
        print(
            f"{r['rows']:>8} {r['seconds']:>8.1f} {r['rows_per_second']:>7.1f} "
            f"{100 * r['failure_fraction']:>6.1f} {r['status'].get('success', 0):>8} {lost:>5} "
            f"{r['wrong_status']:>6} {r['peak_python_worker_mb']:>9} "
            f"{r['max_in_flight_per_host']:>4}/{r['per_host_cap']:<3} {r['retry_after']['min'] or 0:>9.2f}  "
            f"{'; '.join(r['problems']) or 'none'}"
        )
    return 1 if any(r["problems"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
