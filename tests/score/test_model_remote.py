"""``--pretrained`` on a real S3 server: checked where it is, staged once per machine, re-staged on change."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from pipeline.errors import UserInputError
from pipeline.score.model import check_model, load_model, weights_file
from pipeline.score.options import ScoreOptions
from pipeline.score.shard_scorer import ScoreShard


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("CORPUSFORGE_CACHE", str(folder))
    return folder


def test_a_checkpoint_on_s3_is_loaded_through_the_cache(
    s3, random_checkpoint: Path, tmp_path: Path, caplog
) -> None:
    caplog.set_level(logging.INFO, logger="pipeline.remote_cache")
    url = s3.url("models", "tiny.pt")
    s3.fs.put_file(str(random_checkpoint), url)
    check_model("corpusforge-tiny", url)
    # As an executor's worker loads it (ScoreShard.setup), outside Spark here.
    options = ScoreOptions(dataset=s3.url("dataset"), model="corpusforge-tiny", pretrained=url, device="cpu")
    loaded = ScoreShard(options).setup()
    assert loaded.pretrained == url
    local = torch.load(random_checkpoint, weights_only=True)
    assert all(torch.equal(loaded.model.state_dict()[k], v) for k, v in local.items())
    staged = Path(weights_file(url))  # the second time: a cache hit
    assert staged.read_bytes() == random_checkpoint.read_bytes()
    assert sum("staged to" in r.getMessage() for r in caplog.records) == 1
    assert any("cached copy" in r.getMessage() for r in caplog.records)

    changed = dict(local, logit_scale=torch.tensor(1.5))
    torch.save(changed, tmp_path / "changed.pt")
    s3.fs.put_file(str(tmp_path / "changed.pt"), url)
    reloaded = load_model("corpusforge-tiny", url, "cpu")
    assert reloaded.model.logit_scale.item() == pytest.approx(1.5)
    assert sum("staged to" in r.getMessage() for r in caplog.records) == 2
    assert not staged.exists()  # the older copy was replaced


def test_remote_pretrained_errors_come_before_any_work(s3) -> None:
    with pytest.raises(UserInputError, match=r"--pretrained s3://.*/none\.pt: no such checkpoint file"):
        check_model("corpusforge-tiny", s3.url("none.pt"))
    with pytest.raises(
        UserInputError, match="--pretrained abfs://c/x.pt: the abfs:// file system is not installed"
    ):
        check_model("corpusforge-tiny", "abfs://c/x.pt")
