"""`corpusforge demo` end to end, as `make demo` runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_demo_downloads_and_scores_and_prints_the_summaries(tmp_path: Path) -> None:
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
        "--scorer-pairs",
        "300",
        "--scorer-steps",
        "40",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
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
