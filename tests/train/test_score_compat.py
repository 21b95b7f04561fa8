"""Trained checkpoints work as ``spark-submit jobs/score.py --pretrained PATH``."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.dataset import Dataset
from pipeline.score.model import load_model
from pipeline.shards.raw_writer import SampleRecord
from pipeline.submit import run_job
from pipeline.synthetic.scenes import random_scene, render
from pipeline.train.loop import train
from pipeline.train.options import options_from_args
from schemas import RAW_SHARD_SCHEMA
from testkit.raw_shards import write_raw_shard


def raw_dataset(root: Path, samples: int = 12) -> Path:
    """One committed raw shard of synthetic scenes, as the download job writes it."""
    rng = random.Random(5)
    records = []
    for i in range(samples):
        scene = random_scene(rng)
        buffer = io.BytesIO()
        render(scene, (72, 64), rng).save(buffer, format="JPEG")
        row = {f.name: None for f in RAW_SHARD_SCHEMA}
        row.update(uid=f"{i:032x}", row_index=i, url=f"http://img.test/{i}", caption=scene.caption)
        row.update(
            status="success", stored_bytes=len(buffer.getvalue()), original_bytes=len(buffer.getvalue())
        )
        records.append(SampleRecord(row, buffer.getvalue()))
    write_raw_shard(Dataset(str(root)), 0, records)
    return root


@pytest.fixture(scope="module")
def trained(shards: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("trained")
    train(
        options_from_args(
            [
                "--shards",
                f"{shards}/{{000000..000003}}.tar",
                "--output",
                str(out),
                "--steps",
                "3",
                "--batch-size",
                "8",
                "--workers",
                "0",
                "--threads",
                "1",
                "--no-tensorboard",
            ]
        )
    )
    return out


def test_load_model_accepts_the_training_checkpoint_and_the_model_file(trained: Path) -> None:
    full = load_model("corpusforge-tiny", str(trained / "checkpoints" / "step_00000003.pt"), "cpu")
    plain = load_model("corpusforge-tiny", str(trained / "model.pt"), "cpu")
    a, b = full.model.state_dict(), plain.model.state_dict()
    assert all((a[k] == b[k]).all() for k in a)


@pytest.mark.slow
def test_score_job_runs_with_the_training_checkpoint(trained: Path, tmp_path: Path) -> None:
    dataset = raw_dataset(tmp_path / "dataset")
    weights = trained / "checkpoints" / "step_00000003.pt"
    args = ["--dataset", str(dataset), "--model", "corpusforge-tiny", "--pretrained", str(weights)]
    assert run_job("score", [*args, "--batch-size", "4", "--device", "cpu"]) == 0
    table = pq.read_table(dataset / "scores" / "00000.parquet").to_pylist()
    assert len(table) == 12 and all(-1 <= row["clip_score"] <= 1 for row in table)
    assert {row["pretrained"] for row in table} == {str(weights)}
