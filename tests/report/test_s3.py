"""``corpusforge report`` with the dataset and the training output on a real S3 server."""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.cli import main
from pipeline.report.command import write_report
from pipeline.report.options import ReportOptions
from pipeline.storage import TEMP_MARK
from pipeline.train.metrics import MetricsLogger
from tests.report.browser import is_png


def objects(s3, *parts: str) -> list[str]:
    root = s3.url(*parts).removeprefix("s3://")
    return sorted(key[len(root) + 1 :] for key in s3.fs.find(root))


def test_report_reads_and_writes_s3(scored: Path, s3, tmp_path: Path) -> None:
    dataset = s3.url("dataset")
    for folder in ("raw", "scores"):
        s3.fs.put(str(scored / folder), f"{dataset}/{folder}", recursive=True)
    metrics = MetricsLogger(tmp_path / "train", tensorboard=False)
    metrics.log(1, {"train/loss": 2.0})
    metrics.log(2, {"train/loss": 1.5})
    metrics.close()
    s3.fs.put(str(tmp_path / "train"), s3.url("runs", "1"), recursive=True)

    result = write_report(ReportOptions(dataset, s3.url("runs", "1"), samples=4))
    assert result.sections["downloads"] == "ok" and result.sections["scores"] == "ok"
    assert result.sections["training"] == "ok"
    assert result.index == f"{dataset}/report/index.html"
    stored = objects(s3, "dataset", "report")
    assert stored == sorted(["index.html", *result.figures])
    assert "figures/training.png" in result.figures
    page = s3.fs.cat_file(result.index).decode("utf-8")
    for source in re.findall(r'src="([^"]+)"', page):
        assert is_png(s3.fs.cat_file(f"{dataset}/report/{source}")), source

    # A rerun replaces the page and drops figures the new page does not show.
    s3.fs.pipe_file(f"{dataset}/report/figures/stale.png", b"old")
    s3.fs.rm(f"{dataset}/scores", recursive=True)
    assert main(["report", "--dataset", dataset, "--samples", "4"]) == 0
    assert objects(s3, "dataset", "report") == ["figures/downloads.png", "figures/sizes.png", "index.html"]
    assert not [name for name in objects(s3, "dataset") if TEMP_MARK in name]
