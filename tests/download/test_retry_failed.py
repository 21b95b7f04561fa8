"""--retry-failed on real Spark against a server whose hosts fail, then recover."""

from __future__ import annotations

import csv
import json
import pickle
import subprocess
import sys
import tarfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from testkit.flaky import FlakyServer
from tests.stages import download as run

SHARD = 12


@pytest.fixture
def flaky() -> Iterator[FlakyServer]:
    with FlakyServer() as server:
        yield server


def write_list(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["url", "caption"])
        writer.writerows(rows)
    return path


def raw_rows(dataset: Path) -> list[dict]:
    return [r for f in sorted((dataset / "raw").glob("*.parquet")) for r in pq.read_table(f).to_pylist()]


def tar_members(dataset: Path) -> Counter[str]:
    names: Counter[str] = Counter()
    for path in sorted((dataset / "raw").glob("*.tar")):
        with tarfile.open(path) as tar:
            names.update(tar.getnames())
    return names


def stamps(dataset: Path) -> dict[str, int]:
    """Modification times of the raw shards' files (the run's summaries are rewritten every time)."""
    return {p.name: p.stat().st_mtime_ns for p in (dataset / "raw").iterdir() if p.name[0].isdigit()}


def check_accounting(dataset: Path, input_rows: int) -> dict[int, dict]:
    """Every input row once, every success stored once with its three members, nothing else stored."""
    rows = raw_rows(dataset)
    assert sorted(r["row_index"] for r in rows) == list(range(input_rows))
    successes = {r["uid"] for r in rows if r["status"] == "success"}
    members = tar_members(dataset)
    assert set(members.values()) == {1}
    assert set(members) == {f"{uid}.{ext}" for uid in successes for ext in ("jpg", "txt", "json")}
    return {r["row_index"]: r for r in rows}


def fault_list(flaky: FlakyServer, tmp_path: Path) -> tuple[Path, dict[str, list[str]]]:
    """23 rows in two shards: good, retryable failures (5xx, 429, reset), 404s that recover, and
    404s that never do, and one row without a URL."""
    groups = {
        "ok": [flaky.url("ok", f"ok{i}.jpg") for i in range(8)],
        "retryable": [
            flaky.url(f"flaky/{kind}", f"{kind}-{i}.jpg")
            for kind, count in (("503", 3), ("500", 3), ("429", 2), ("reset", 2))
            for i in range(count)
        ],
        "flaky404": [flaky.url("flaky/404", f"404-{i}.jpg") for i in range(2)],
        "gone": [flaky.url("gone", f"gone{i}.jpg") for i in range(2)],
    }
    urls = [u for group in groups.values() for u in group]
    rows = [(url, f"caption {i}") for i, url in enumerate(urls)] + [("", "a row without a URL")]
    # Interleave so both shards hold every kind.
    rows = rows[::2] + rows[1::2]
    return write_list(tmp_path / "list.csv", rows), groups


def test_retry_failed_redoes_only_retryable_rows_and_rewrites_shards_in_place(
    spark, flaky: FlakyServer, download_options, tmp_path: Path
) -> None:
    urls, groups = fault_list(flaky, tmp_path)
    dataset = tmp_path / "dataset"
    # No retries within a run (the test is about the next run); a generous deadline for a loaded machine.
    base = ("--samples-per-shard", str(SHARD), "--retries", "0", "--timeout", "10")
    first = run(spark, download_options(urls, *base, "--warn-min-rows", "10"))
    assert first["successes"] == 8 and first["rows"] == 23
    # Every failure comes from the one host: the summary warns about it.
    assert [w["check"] for w in first["warnings"]] == ["host_share"]
    assert "accounts for 14 of 14 failed rows" in first["warnings"][0]["message"]
    before = check_accounting(dataset, 23)
    failed = Counter(r["error_class"] for r in before.values() if r["status"] == "failed")
    assert failed == {"http_error": 12, "connection_reset": 2}
    markers = {p.name: json.loads(p.read_text()) for p in (dataset / "raw").glob("*_stats.json")}
    requests_before = {url: flaky.seen(url) for group in groups.values() for url in group}

    # The hosts recover; the retry fetches the 5xx, 429 and reset rows again, not the 404s.
    flaky.down = False
    summary = run(spark, download_options(urls, *base, "--retry-failed"))
    after = check_accounting(dataset, 23)
    for url in groups["retryable"]:
        assert flaky.seen(url) > requests_before[url], url
    for url in groups["ok"] + groups["flaky404"] + groups["gone"]:
        assert flaky.seen(url) == requests_before[url], url
    by_url = {r["url"]: r for r in after.values()}
    assert all(by_url[u]["status"] == "success" for u in groups["retryable"] + groups["ok"])
    assert all(by_url[u]["error_class"] == "http_error" for u in groups["flaky404"] + groups["gone"])
    # Rows not retried are unchanged, field for field; stored samples keep their bytes.
    for index, row in before.items():
        if row["url"] not in groups["retryable"]:
            assert after[index] == row
    assert summary["successes"] == 18 and summary["failed"] == 4 and summary["skipped"] == 1
    assert summary["retry"]["retried"] == {"http_error": 8, "connection_reset": 2}
    assert summary["retry"]["recovered"] == {"http_error": 8, "connection_reset": 2}
    assert summary["retry"]["shards_rewritten"] == 2
    assert summary["successes_this_run"] == 10
    assert summary["warnings"] == []  # 22 fetched rows: below --warn-min-rows 100
    written = json.loads((dataset / "raw" / "_summary.json").read_text())
    assert written["retry"] == summary["retry"]
    # The markers keep their fingerprints and record the round.
    for name, marker in markers.items():
        new = json.loads((dataset / "raw" / name).read_text())
        assert new["fingerprint"] == marker["fingerprint"]
        assert [r["recovered"] for r in new["retries"]] and new["successes"] > marker["successes"]
    assert not list((dataset / "raw").glob(".*"))  # no journal, no temporary left

    # A plain rerun finds every shard complete and touches nothing.
    files = stamps(dataset)
    requests = {url: flaky.seen(url) for group in groups.values() for url in group}
    plain = run(spark, download_options(urls, *base))
    assert plain["shards_resumed"] == plain["shards"] == 2 and plain["successes"] == 18
    # Another retry finds nothing of the default classes left: nothing fetched or rewritten.
    again = run(spark, download_options(urls, *base, "--retry-failed"))
    assert again["retry"]["retried"] == {} and again["retry"]["shards_rewritten"] == 0
    assert stamps(dataset) == files
    assert requests == {url: flaky.seen(url) for group in groups.values() for url in group}

    # Naming a status retries it: the 404s that recovered are stored, the gone ones stay failed.
    seen_gone = {u: flaky.seen(u) for u in groups["gone"]}
    named = run(spark, download_options(urls, *base, "--retry-failed", "http_error:404"))
    assert named["retry"]["retried"] == {"http_error": 4}
    assert named["retry"]["recovered"] == {"http_error": 2}
    assert all(flaky.seen(u) == seen_gone[u] + 1 for u in groups["gone"])
    final = check_accounting(dataset, 23)
    assert sum(r["status"] == "success" for r in final.values()) == 20


KILLED_RETRY = """
import os, pickle, sys
from pipeline.download.shard_worker import DownloadShard
from pipeline.storage import Storage

options, inputs, renames = pickle.loads(bytes.fromhex(sys.argv[1]))
done = 0
rename = Storage.rename

def dying_rename(self, source, final):
    global done
    done += 1
    if done > renames:
        os._exit(17)  # killed: no clean-up runs
    rename(self, source, final)

Storage.rename = dying_rename
DownloadShard(options, inputs).process(0, None)
"""


def test_a_retry_killed_mid_rewrite_is_finished_by_the_next_run(
    spark, flaky: FlakyServer, download_options, tmp_path: Path
) -> None:
    good = [flaky.url("ok", f"k{i}.jpg") for i in range(3)]
    failing = [flaky.url("flaky/503", f"k{i}.jpg") for i in range(3)]
    urls = write_list(tmp_path / "list.csv", [(u, f"caption {i}") for i, u in enumerate(good + failing)])
    dataset = tmp_path / "dataset"
    run(spark, download_options(urls, "--retries", "0", "--timeout", "10"))
    marker = json.loads((dataset / "raw" / "00000_stats.json").read_text())
    assert marker["successes"] == 3
    flaky.down = False
    # A retry killed after its journal and the new tar are in place (renames: journal, tar).
    options = download_options(urls, "--retries", "0", "--timeout", "10", "--retry-failed")
    inputs = marker["fingerprint"].rsplit(":", 1)[0]
    payload = pickle.dumps((options, inputs, 2)).hex()
    child = subprocess.run([sys.executable, "-c", KILLED_RETRY, payload], capture_output=True, timeout=120)
    assert child.returncode == 17, child.stderr.decode()[-2000:]
    assert not (dataset / "raw" / "00000_stats.json").exists()  # readers see an incomplete shard
    assert (dataset / "raw" / ".00000_replace.json").exists()
    # The next run, even a plain one, finishes the rewrite before anything else.
    summary = run(spark, download_options(urls, "--retries", "0", "--timeout", "10"))
    assert summary["successes"] == 6 and summary["shards_resumed"] == 1
    check_accounting(dataset, 6)
    finished = json.loads((dataset / "raw" / "00000_stats.json").read_text())
    assert finished["fingerprint"] == marker["fingerprint"] and finished["retries"][0]["recovered"] == {
        "http_error": 3
    }
    assert not list((dataset / "raw").glob(".*"))
