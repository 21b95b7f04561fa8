"""`corpusforge demo` end to end, as `make demo` runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def test_demo_runs_the_whole_chain_and_points_at_the_report(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "pipeline.cli",
        "demo",
        "--workdir",
        str(tmp_path),
        "--images",
        "120",
        "--faults-per-kind",
        "1",
        # The scorer's quality is not asserted here (tests/score/test_quality.py does that): one
        # batch of pairs and a few steps still run the step end to end.
        "--scorer-pairs",
        "128",
        "--scorer-steps",
        "10",
        "--train-steps",
        "20",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "download summary" in output and "score summary" in output and "ROC AUC" in output
    summary = json.loads((tmp_path / "dataset" / "raw" / "_summary.json").read_text())
    assert summary["input_rows"] == 126  # 120 images and 6 deliberately bad rows
    assert summary["successes"] + summary["failed"] + summary["skipped"] == 126
    assert summary["errors"]["address_refused"] == 1 and summary["errors"]["opted_out"] == 1
    assert 100 <= summary["successes"] <= 110
    scores = json.loads((tmp_path / "dataset" / "scores" / "_summary.json").read_text())
    assert scores["scored"] == summary["successes"] and scores["model"] == "corpusforge-tiny"
    dedup = json.loads((tmp_path / "dataset" / "dedup" / "_summary.json").read_text())
    assert dedup["by_reason"]["benchmark_duplicate"] >= 1  # the world plants copies of its benchmark
    sizes = json.loads((tmp_path / "dataset" / "final" / "sizes.json").read_text())
    assert 0 < sum(sizes.values()) < scores["scored"]
    knn = json.loads((tmp_path / "dataset" / "index" / "image_stats.json").read_text())
    assert knn["ntotal"] == scores["scored"] and (tmp_path / "dataset" / "index" / "text.faiss").exists()
    trained = json.loads((tmp_path / "train" / "summary.json").read_text())
    assert trained["steps"] == 20
    index = tmp_path / "dataset" / "report" / "index.html"
    assert index.exists() and f"open the report at {index}" in output
    assert f"corpusforge explore --dataset {tmp_path / 'dataset'}" in output
