"""Reading stage outputs into report data: counts, histograms, thresholds, samples, metrics."""

from __future__ import annotations

import io
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipeline.dataset import Dataset
from pipeline.report.collect import (
    SIZE_EDGES,
    Missing,
    collect_downloads,
    collect_pairs,
    collect_scores,
    collect_training,
)
from pipeline.score.distribution import BINS
from pipeline.shards.raw_writer import SampleRecord
from pipeline.train.metrics import MetricsLogger
from schemas import RAW_SHARD_SCHEMA
from testkit.raw_shards import write_raw_shard
from tests.report.conftest import Pipeline, all_scores, stage_copy
from tests.stages import build as build
from tests.stages import build_options as build_options


def raw_row(index: int, status: str, error: str | None = None, size: tuple[int, int] | None = None) -> dict:
    row = {f.name: None for f in RAW_SHARD_SCHEMA}
    row.update(
        uid=f"{index:032x}", row_index=index, url=f"http://img.test/{index}", caption=f"caption {index}"
    )
    row.update(status=status, error_class=error)
    if size:
        row.update(original_width=size[0], original_height=size[1], width=64, height=48, stored_bytes=10)
    return row


def jpeg(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "teal").save(buffer, format="JPEG")
    return buffer.getvalue()


def test_download_outcomes_by_class_and_status(tmp_path: Path) -> None:
    dataset = Dataset(str(tmp_path))
    plan = {
        0: [("success", None, (640, 480))] * 3 + [("failed", "http_error", None)] * 2,
        1: [("success", None, (3000, 20))]
        + [("failed", "timeout", None), ("skipped", "duplicate_url", None)],
    }
    index = 0
    for shard, rows in plan.items():
        records = []
        for status, error, size in rows:
            records.append(SampleRecord(raw_row(index, status, error, size), jpeg(64, 48) if size else None))
            index += 1
        write_raw_shard(dataset, shard, records)
    # A shard without its stats marker is incomplete: not counted.
    write_raw_shard(dataset, 2, [SampleRecord(raw_row(99, "failed", "dns_error"))])
    (tmp_path / "raw" / "00002_stats.json").unlink()

    downloads, sizes = collect_downloads(dataset)
    assert downloads.shards == 2 and downloads.rows == 8 and downloads.expected_shards is None
    assert downloads.status == {"success": 4, "failed": 3, "skipped": 1}
    assert [(o.name, o.status, o.count) for o in downloads.outcomes] == [
        ("success", "success", 4),
        ("http_error", "failed", 2),
        ("duplicate_url", "skipped", 1),
        ("timeout", "failed", 1),
    ]
    assert downloads.summary is None  # the download job did not finish
    assert sizes.count == 4
    assert sum(sizes.original_width) == sum(sizes.height) == 4
    widths = np.asarray(sizes.original_width)
    assert widths[np.searchsorted(SIZE_EDGES, 640, side="right") - 1] == 3
    assert widths[np.searchsorted(SIZE_EDGES, 3000, side="right") - 1] == 1
    assert sizes.ranges["original_height"] == (20, 480)
    assert sizes.stored_sizes == (("64x48", 4),)


def test_a_download_without_successes_has_no_size_figure(tmp_path: Path) -> None:
    dataset = Dataset(str(tmp_path))
    write_raw_shard(dataset, 0, [SampleRecord(raw_row(0, "failed", "undecodable"))])
    downloads, sizes = collect_downloads(dataset)
    assert [o.name for o in downloads.outcomes] == ["undecodable"]
    assert isinstance(sizes, Missing) and "every row failed" in sizes.note


def test_training_metrics_from_jsonl_and_csv_agree(tmp_path: Path) -> None:
    logger = MetricsLogger(tmp_path, tensorboard=False)
    for step in (1, 2, 3):
        logger.log(step, {"train/loss": 3.0 / step, "train/lr": 1e-3})
    logger.log(2, {"world/zeroshot_top1": 0.25})
    logger.close()
    # A resumed run logs step 3 again: its value replaces the first one.
    logger = MetricsLogger(tmp_path, tensorboard=False)
    logger.log(3, {"train/loss": 0.5})
    logger.close()
    with open(tmp_path / "metrics.jsonl", "a", encoding="utf-8") as handle:
        handle.write('{"step": 4, "train/lo')  # killed mid-write

    from_jsonl = collect_training(str(tmp_path))
    assert from_jsonl.source.endswith("metrics.jsonl") and from_jsonl.skipped_lines == 1
    assert from_jsonl.series["train/loss"] == ((1, 3.0), (2, 1.5), (3, 0.5))
    assert from_jsonl.series["world/zeroshot_top1"] == ((2, 0.25),)
    assert from_jsonl.summary is None
    (tmp_path / "metrics.jsonl").unlink()
    from_csv = collect_training(str(tmp_path))
    assert from_csv.source.endswith("metrics.csv") and from_csv.skipped_lines == 0
    assert from_csv.series == from_jsonl.series


def test_training_not_run(tmp_path: Path) -> None:
    assert "no --train-dir given" in collect_training(None).note
    empty = collect_training(str(tmp_path / "missing"))
    assert isinstance(empty, Missing) and not empty.error and "has not logged metrics yet" in empty.note


@pytest.mark.slow
def test_trainer_output_is_read(pipeline: Pipeline) -> None:
    training = collect_training(str(pipeline.train))
    summary = json.loads((pipeline.train / "summary.json").read_text())
    assert training.summary == summary
    assert [step for step, _ in training.series["train/loss"]] == list(range(1, summary["steps"] + 1))
    assert training.series["train/loss"][-1][1] == pytest.approx(summary["final_loss"])
    assert {s for s, _ in training.series["world/zeroshot_top1"]} == {2, 4}


def reference_histogram(scores: list[float]) -> list[int]:
    counts, _ = np.histogram(np.clip(scores, -1, 1), bins=np.linspace(-1, 1, BINS + 1))
    return counts.tolist()


def test_scores_finished_and_unfinished(scored: Path, tmp_path: Path) -> None:
    dataset = stage_copy(scored, tmp_path / "dataset", ("raw", "scores"))
    expected = reference_histogram(list(all_scores(dataset).values()))
    finished = collect_scores(Dataset(str(dataset)))
    assert finished.finished and list(finished.counts) == expected
    assert finished.shards_scored == finished.raw_shards == 3
    assert (
        isinstance(finished.threshold, Missing) and "build_shards has not run yet" in finished.threshold.note
    )

    # Killed after two shards: the summary is missing and the third shard's scores too.
    (dataset / "scores" / "_summary.json").unlink()
    third = pq.read_table(dataset / "scores" / "00002.parquet").column("clip_score").to_pylist()
    (dataset / "scores" / "00002_stats.json").unlink()
    partial = collect_scores(Dataset(str(dataset)))
    assert not partial.finished and partial.shards_scored == 2
    assert sum(partial.counts) == len(all_scores(dataset)) - len(third)
    assert set(partial.candidates) == {0.2, 0.25, 0.28, 0.3, 0.32, 0.35}


@pytest.mark.slow
def test_top_fraction_threshold_from_the_manifest(spark, scored: Path, tmp_path: Path) -> None:
    dataset = stage_copy(scored, tmp_path / "dataset", ("raw", "scores"))
    build(spark, build_options(["--dataset", str(dataset), "--top-fraction", "0.3", "--min-shards", "0"]))
    scores = collect_scores(Dataset(str(dataset)))
    manifest = json.loads((dataset / "final" / "manifest.json").read_text())
    threshold = scores.threshold
    assert threshold.rule == "top_fraction"
    assert threshold.value == manifest["selection"]["top_fraction_boundary"]["clip_score"]
    n = len(all_scores(dataset))
    assert threshold.kept_of_scored == math.ceil(0.3 * n) / n
    assert threshold.kept == manifest["counts"]["kept"] == math.ceil(0.3 * n)


@pytest.mark.slow
def test_pair_samples_are_seeded_and_read_from_the_raw_tars(pipeline: Pipeline, tmp_path: Path) -> None:
    dataset = stage_copy(pipeline.dataset, tmp_path / "dataset", ("raw", "scores", "dedup", "final"))
    first = collect_pairs(Dataset(str(dataset)), samples=5, seed=1)
    again = collect_pairs(Dataset(str(dataset)), samples=5, seed=1)
    other = collect_pairs(Dataset(str(dataset)), samples=5, seed=2)
    assert first == again
    assert [p.uid for p in first.kept] != [p.uid for p in other.kept]
    assert len(first.kept) == len(first.dropped) == 5
    records = {r["uid"]: r for r in pq.read_table(dataset / "final" / "_selection").to_pylist()}
    assert first.kept_total == sum(r["reason"] is None for r in records.values())
    for pair in first.kept + first.dropped:
        assert pair.reason == records[pair.uid]["reason"]
        assert pair.clip_score == pytest.approx(records[pair.uid]["clip_score"])
        with Image.open(io.BytesIO(pair.image)) as image:
            assert image.size == (256, 256)
    # The raw tar of a shard is gone: its pairs are still listed, without an image.
    lost = first.kept[0].raw_shard
    (dataset / "raw" / f"{lost:05d}.tar").unlink()
    without = collect_pairs(Dataset(str(dataset)), samples=5, seed=1)
    assert [p.uid for p in without.kept] == [p.uid for p in first.kept]
    assert all((p.image is None) == (p.raw_shard == lost) for p in without.kept + without.dropped)


def test_pairs_before_the_build_are_the_extreme_scores(scored: Path, tmp_path: Path) -> None:
    dataset = stage_copy(scored, tmp_path / "dataset", ("raw", "scores"))
    pairs = collect_pairs(Dataset(str(dataset)), samples=4, seed=0)
    ranked = sorted(all_scores(dataset).items(), key=lambda kv: (-kv[1], kv[0]))
    assert pairs.source == "scores" and pairs.kept_total == len(ranked)
    assert [p.uid for p in pairs.kept] == [u for u, _ in ranked[:4]]
    lowest = sorted(ranked, key=lambda kv: (kv[1], kv[0]))[:4]
    assert [p.uid for p in pairs.dropped] == [u for u, _ in lowest]
    shutil.rmtree(dataset / "scores")
    assert isinstance(collect_pairs(Dataset(str(dataset)), samples=4, seed=0), Missing)
