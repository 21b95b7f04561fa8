"""Two CPU processes under torchrun (gloo): disjoint data, identical weights, exact resume."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from testkit.net import free_port

TORCHRUN = Path(sys.executable).with_name("torchrun")


def torchrun(shards: Path, output: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [
        str(TORCHRUN),
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(free_port()),
        "-m",
        "pipeline.cli",
        "train",
        "--shards",
        f"{shards}/{{000000..000003}}.tar",
        "--output",
        str(output),
        "--batch-size",
        "8",
        "--accum-freq",
        "2",
        "--steps",
        "4",
        "--save-every",
        "2",
        "--workers",
        "1",
        "--threads",
        "1",
        "--no-tensorboard",
        "--log-sample-keys",
        *extra,
    ]
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo"}  # keep gloo on loopback
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_two_ranks_train_on_disjoint_data_to_identical_weights_and_resume_exactly(
    shards: Path, tmp_path: Path
) -> None:
    result = torchrun(shards, tmp_path / "a")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "trained corpusforge-tiny to step 4: 128 samples" in result.stdout
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["global_batch"] == 32
    digests = summary["weights_sha256_per_rank"]
    assert len(digests) == 2 and digests[0] == digests[1]
    keys = [(tmp_path / "a" / "sample_keys" / f"rank_{r}.txt").read_text().split() for r in range(2)]
    assert len(keys[0]) == len(keys[1]) == 64
    assert not set(keys[0]) & set(keys[1])

    (tmp_path / "b" / "checkpoints").mkdir(parents=True)
    shutil.copy(tmp_path / "a" / "checkpoints" / "step_00000002.pt", tmp_path / "b" / "checkpoints")
    result = torchrun(shards, tmp_path / "b", "--resume", "latest")
    assert result.returncode == 0, result.stderr[-3000:]
    a = torch.load(tmp_path / "a" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "model.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    resumed = [(tmp_path / "b" / "sample_keys" / f"rank_{r}.txt").read_text().split() for r in range(2)]
    assert resumed == [k[32:] for k in keys]  # each rank continued exactly where it stood
