"""The final shards through open_clip_train's own data pipeline and trainer (open-clip-torch 3.3).

open_clip_train needs webdataset <= 0.2.86 (what open-clip-torch[training] declares); with
webdataset 1.x its tar reader fails on any shards (KeyError 'fname'), ours included.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.build.conftest import build_options, raw_rows, read_json, selection
from tests.stages import build as run

BATCH = 4


@pytest.fixture(scope="module")
def built(spark, scored: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """final/ of the scored world in shards of 8, and its brace pattern for --train-data."""
    root = tmp_path_factory.mktemp("open_clip") / "dataset"
    shutil.copytree(scored, root)
    summary = run(spark, build_options(root, "--top-fraction", "0.9", "--samples-per-shard", "8"))
    return root, f"{root}/final/{{000000..{summary['shards'] - 1:06d}}}.tar"


def _train_args(pattern: str) -> object:
    from open_clip_train.params import parse_args

    args = parse_args(["--train-data", pattern, "--batch-size", str(BATCH), "--workers", "1", "--seed", "3"])
    # What open_clip_train.main sets from the (non-)distributed environment.
    args.world_size, args.rank, args.local_rank, args.distributed = 1, 0, 0, False
    return args


def test_get_data_reads_every_kept_sample(built: tuple[Path, str]) -> None:
    import open_clip
    from open_clip_train.data import get_data

    from pipeline.score.model import register_configs

    dataset, pattern = built
    register_configs()
    _, preprocess_train, preprocess_val = open_clip.create_model_and_transforms("corpusforge-tiny")
    tokenizer = open_clip.get_tokenizer("corpusforge-tiny")
    transforms = (preprocess_train, preprocess_val)
    info = get_data(_train_args(pattern), transforms, epoch=0, tokenizer=tokenizer)["train"]
    info.set_epoch(0)
    kept = [uid for uid, record in selection(dataset).items() if record["reason"] is None]
    total = sum(read_json(dataset / "final" / "sizes.json").values())
    assert total == len(kept)
    # The sample count open_clip_train derives from sizes.json (whole batches, rounded up).
    assert info.dataloader.num_samples == math.ceil(total / BATCH) * BATCH
    rows = raw_rows(dataset)
    expected = {tuple(tokenizer([rows[uid]["caption"]])[0].tolist()) for uid in kept}
    seen, batches = set(), 0
    for images, texts in info.dataloader:
        assert images.shape == (BATCH, 3, 64, 64) and texts.shape[0] == BATCH
        seen.update(tuple(t.tolist()) for t in texts)
        batches += 1
    assert batches == info.dataloader.num_batches
    assert seen <= expected
    # One pass drops at most the last partial batch, so nearly every caption is seen.
    assert len(seen) >= len(expected) - total % BATCH


@pytest.mark.slow
def test_open_clip_train_main_trains_an_epoch_on_the_shards(built: tuple[Path, str], tmp_path: Path) -> None:
    dataset, pattern = built
    total = sum(read_json(dataset / "final" / "sizes.json").values())
    # corpusforge-tiny is registered in the child, then open_clip_train's own main() runs.
    code = (
        "import sys; from pipeline.score.model import register_configs; register_configs(); "
        "from open_clip_train.main import main; main(sys.argv[1:])"
    )
    args = [
        "--train-data",
        pattern,
        "--model",
        "corpusforge-tiny",
        "--batch-size",
        str(BATCH),
        "--epochs",
        "1",
        "--workers",
        "1",
        "--device",
        "cpu",
        "--precision",
        "fp32",
        "--lr",
        "1e-3",
        "--warmup",
        "2",
        "--logs",
        str(tmp_path / "logs"),
        "--name",
        "run",
        "--report-to",
        "",
        "--save-frequency",
        "1",
    ]
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    log = (tmp_path / "logs" / "run" / "out.log").read_text()
    samples = math.ceil(total / BATCH) * BATCH
    assert f"[{samples}/{samples} (100%)]" in log, log[-2000:]
    assert (tmp_path / "logs" / "run" / "checkpoints" / "epoch_1.pt").exists()
