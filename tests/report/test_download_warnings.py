"""The report shows the download's error-rate warnings, with the thresholds of the last run."""

from __future__ import annotations

from pathlib import Path

from pipeline.dataset import Dataset
from pipeline.report.collect import Missing, ReportData, collect_downloads
from pipeline.report.html import render_page
from pipeline.shards.raw_writer import SampleRecord
from testkit.raw_shards import write_raw_shard
from tests.report.test_collect import jpeg, raw_row


def failing_dataset(root: Path) -> Dataset:
    """120 rows: 100 DNS failures on one host, 20 stored (from other hosts)."""
    dataset = Dataset(str(root))
    records = []
    for index in range(120):
        if index < 100:
            row = {**raw_row(index, "failed", "dns_error"), "url": f"http://dead.test/{index}.jpg"}
            records.append(SampleRecord(row))
        else:
            records.append(SampleRecord(raw_row(index, "success", None, (640, 480)), jpeg(64, 48)))
    write_raw_shard(dataset, 0, records)
    return dataset


def page(downloads: object) -> str:
    missing = Missing("not run")
    return render_page(
        ReportData(
            dataset="/data/x",
            generated="2026-01-02T03:04:05+00:00",
            downloads=downloads,
            sizes=missing,
            scores=missing,
            pairs=missing,
            dedup=missing,
            training=missing,
        ),
        {},
    )


def test_the_report_warns_about_unusual_error_rates(tmp_path: Path) -> None:
    dataset = failing_dataset(tmp_path / "ds")
    downloads, _ = collect_downloads(dataset)
    assert len(downloads.warnings) == 2
    assert downloads.warnings[0].startswith("dns_error: 100 of 120 fetched rows (83.3%, above 10%)")
    assert "one host, dead.test, accounts for 100 of 100 failed rows" in downloads.warnings[1]
    html = page(downloads)
    assert '<div class="warning"><p>Unusual error rates:</p><ul><li>dns_error: 100 of 120' in html
    # The last download run's thresholds apply: with the DNS check at 90%, only the host warns.
    dataset.raw.write_summary({"warning_thresholds": {"warn_dns_rate": 0.9, "warn_min_rows": 100}})
    downloads, _ = collect_downloads(dataset)
    assert [w.split(",")[0] for w in downloads.warnings] == ["one host"]


def test_no_warning_block_for_an_ordinary_download(tmp_path: Path) -> None:
    dataset = Dataset(str(tmp_path / "ds"))
    write_raw_shard(dataset, 0, [SampleRecord(raw_row(0, "success", None, (64, 48)), jpeg(64, 48))])
    downloads, _ = collect_downloads(dataset)
    assert downloads.warnings == ()
    assert 'class="warning"' not in page(downloads)
