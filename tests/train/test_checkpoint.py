"""Checkpoints: atomic writes, latest lookup, weights_only loading that refuses pickled code."""

from __future__ import annotations

import collections
import os
from pathlib import Path

import pytest
import torch

from pipeline.errors import UserInputError
from pipeline.train.checkpoint import (
    FORMAT,
    atomic_save,
    checkpoint_path,
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    resolve_resume,
)


def minimal(step: int) -> dict:
    return {"format": FORMAT, "name": "corpusforge-tiny", "step": step, "state_dict": {"w": torch.ones(2)}}


def test_atomic_save_leaves_only_the_final_file(tmp_path: Path) -> None:
    path = Path(atomic_save(minimal(3), checkpoint_path(tmp_path, 3)))
    assert path.name == "step_00000003.pt"
    assert os.listdir(tmp_path) == [path.name]
    assert load_checkpoint(path)["step"] == 3


def test_latest_ignores_temporary_files_and_prune_keeps_the_newest(tmp_path: Path) -> None:
    assert latest_checkpoint(tmp_path / "none") is None
    for step in (5, 20, 10):
        atomic_save(minimal(step), checkpoint_path(tmp_path, step))
    (tmp_path / ".step_00000030.pt.tmp-123").write_bytes(b"half written")
    assert Path(latest_checkpoint(tmp_path)).name == "step_00000020.pt"
    assert Path(resolve_resume("latest", tmp_path)).name == "step_00000020.pt"
    assert resolve_resume("", tmp_path) is None
    prune_checkpoints(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.glob("step_*")) == ["step_00000010.pt", "step_00000020.pt"]


class Payload:
    """Any class: unpickling it would run code."""

    def __reduce__(self):
        return (print, ("pwned",))


def test_checkpoints_with_pickled_code_are_refused(tmp_path: Path, capsys) -> None:
    path = tmp_path / "evil.pt"
    torch.save({**minimal(1), "extra": Payload()}, path)
    with pytest.raises(UserInputError, match="refused, the checkpoint holds pickled objects or code"):
        load_checkpoint(path)
    assert "pwned" not in capsys.readouterr().out
    torch.save({**minimal(1), "extra": collections.OrderedDict(a=Payload)}, path)
    with pytest.raises(UserInputError, match="weights_only"):
        load_checkpoint(path)


def test_other_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(UserInputError, match="not a readable PyTorch checkpoint"):
        load_checkpoint(tmp_path / "text.pt")
    torch.save({"w": torch.ones(1)}, tmp_path / "plain.pt")
    with pytest.raises(UserInputError, match="not a corpusforge training checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")
