"""Training against a real S3 server (SeaweedFS on loopback): output, resume, remote evaluation inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pipeline.storage import TEMP_MARK
from pipeline.synthetic.world import generate_world, held_out_spec
from pipeline.train.checkpoint import (
    FORMAT,
    LATEST,
    atomic_save,
    checkpoint_path,
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
)
from pipeline.train.options import options_from_args
from tests.train.test_loop import run, write_image_folder

# A smaller model than corpusforge-tiny: its checkpoints (weights and AdamW state) are ~10 MB,
# not ~65 MB, so the S3 round trips stay quick on a loaded CI machine.
MICRO = "corpusforge-test-micro"
MICRO_CONFIG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module", autouse=True)
def micro_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Register the micro config with open_clip (as ``corpusforge-tiny`` is, from a JSON file)."""
    import open_clip

    path = tmp_path_factory.mktemp("configs") / f"{MICRO}.json"
    path.write_text(json.dumps(MICRO_CONFIG))
    open_clip.add_model_config(path)
    return MICRO


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Remote inputs are staged under the test's own folder, never ~/.cache."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("CORPUSFORGE_CACHE", str(folder))
    return folder


def names(s3, *parts: str) -> list[str]:
    """Every object under ``s3://BUCKET/PARTS``, relative to it."""
    root = s3.url(*parts).removeprefix("s3://")
    return sorted(key[len(root) + 1 :] for key in s3.fs.find(root))


def remote_state_dict(s3, *parts: str) -> dict:
    with s3.fs.open(s3.url(*parts), "rb") as handle:
        return torch.load(handle, map_location="cpu", weights_only=True)


def minimal(step: int) -> dict:
    return {"format": FORMAT, "name": "corpusforge-tiny", "step": step, "state_dict": {"w": torch.ones(2)}}


def test_checkpoints_on_s3_latest_pointer_prune_and_load(s3) -> None:
    folder = s3.url("run", "checkpoints")
    assert latest_checkpoint(folder) is None
    for step in (5, 10):
        save_checkpoint(minimal(step), folder)
    assert json.loads(s3.fs.cat_file(f"{folder}/{LATEST}")) == {"file": "step_00000010.pt", "step": 10}
    # A run killed while saving step 20: a temporary object, and a renamed copy never vouched for.
    s3.fs.pipe_file(f"{folder}/.step_00000020.pt{TEMP_MARK}0123456789ab", b"half written")
    atomic_save(minimal(20), checkpoint_path(folder, 20))
    assert latest_checkpoint(folder) == checkpoint_path(folder, 10)
    assert load_checkpoint(latest_checkpoint(folder))["step"] == 10
    # Checkpoints copied by hand (no pointer): the newest name counts.
    s3.fs.rm(f"{folder}/{LATEST}")
    assert latest_checkpoint(folder) == checkpoint_path(folder, 20)
    prune_checkpoints(folder, keep=2)
    assert names(s3, "run", "checkpoints") == [
        f".step_00000020.pt{TEMP_MARK}0123456789ab",
        "step_00000010.pt",
        "step_00000020.pt",
    ]
    with pytest.raises(Exception, match="no such checkpoint file"):
        load_checkpoint(s3.url("run", "checkpoints", "step_00000099.pt"))


def test_training_to_s3_then_resume_latest_ignores_a_half_written_checkpoint(shards: Path, s3) -> None:
    s3.fs.put(str(shards), s3.url("final"), recursive=True)  # the shards on S3 too, read by 2 workers
    out = s3.url("runs", "1")
    options = ("--model", MICRO, "--workers", "2", "--log-sample-keys", "--log-every", "1")
    summary = run(s3.url("final"), out, *options, "--steps", "3", "--tensorboard")
    assert summary["steps"] == 3 and summary["model_file"] == f"{out}/model.pt"
    stored = names(s3, "runs", "1")
    assert [n for n in stored if not n.startswith("tensorboard/")] == [
        "checkpoints/latest.json",
        "checkpoints/step_00000003.pt",
        "metrics.csv",
        "metrics.jsonl",
        "model.pt",
        "sample_keys/rank_0.txt",
        "summary.json",
    ]
    assert any(n.startswith("tensorboard/events.out.tfevents.") for n in stored)
    lines = s3.fs.cat_file(f"{out}/metrics.jsonl").splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3]
    assert len(s3.fs.cat_file(f"{out}/sample_keys/rank_0.txt").splitlines()) == 24
    assert json.loads(s3.fs.cat_file(f"{out}/summary.json"))["steps"] == 3
    model = remote_state_dict(s3, "runs", "1", "model.pt")
    assert all(
        torch.equal(model[k], v)
        for k, v in load_checkpoint(f"{out}/checkpoints/step_00000003.pt")["state_dict"].items()
    )

    # A later run was killed while saving step 6: a temporary object, and a renamed copy that
    # latest.json never named.
    s3.fs.pipe_file(f"{out}/checkpoints/.step_00000006.pt{TEMP_MARK}0123456789ab", b"half")
    s3.fs.pipe_file(f"{out}/checkpoints/step_00000006.pt", b"not vouched for")
    again = ("--steps", "6", "--resume", "latest", "--keep-checkpoints", "1")
    resumed = run(s3.url("final"), out, *options, *again)
    assert resumed["steps"] == 6 and resumed["steps_this_run"] == 3
    assert names(s3, "runs", "1", "checkpoints") == ["latest.json", "step_00000006.pt"]  # temporaries gone
    assert json.loads(s3.fs.cat_file(f"{out}/checkpoints/{LATEST}"))["step"] == 6
    checkpoint = load_checkpoint(f"{out}/checkpoints/step_00000006.pt")
    assert checkpoint["step"] == 6 and checkpoint["data"]["ranks"][0]["batches"] == 6
    appended = [json.loads(line)["step"] for line in s3.fs.cat_file(f"{out}/metrics.jsonl").splitlines()]
    assert appended == [1, 2, 3, 4, 5, 6]  # the first run's lines, then this run's
    assert len(s3.fs.cat_file(f"{out}/sample_keys/rank_0.txt").splitlines()) == 48


def test_eval_world_zeroshot_dir_and_pretrained_from_s3(
    shards: Path, s3, tmp_path: Path, cache: Path
) -> None:
    import open_clip

    world = generate_world(tmp_path / "world", held_out_spec(images=12))
    s3.fs.put(str(world), s3.url("eval", "world"), recursive=True)
    s3.fs.put(str(write_image_folder(tmp_path / "folder")), s3.url("eval", "folder"), recursive=True)
    s3.fs.pipe_file(s3.url("eval", "prompts.txt"), b"a {}\nthe {} shape\n")
    torch.manual_seed(3)
    weights = open_clip.create_model(MICRO).state_dict()
    torch.save(weights, tmp_path / "start.pt")
    s3.fs.put_file(str(tmp_path / "start.pt"), s3.url("models", "start.pt"))
    summary = run(
        shards,
        tmp_path / "out",
        "--model",
        MICRO,
        "--workers",
        "0",
        "--steps",
        "1",
        "--lr",
        "1e-12",
        "--pretrained",
        s3.url("models", "start.pt"),
        "--eval-world",
        s3.url("eval", "world"),
        "--zeroshot-dir",
        s3.url("eval", "folder"),
        "--zeroshot-templates",
        s3.url("eval", "prompts.txt"),
    )
    assert {"world/zeroshot_top1", "world/image_to_text_R@1", "folder/zeroshot_top1"} <= set(summary["eval"])
    staged = sorted(p.name for p in cache.rglob("*") if p.is_file() and p.suffix in (".pt", ".parquet"))
    assert staged == ["start.pt", "world.parquet"]
    trained = torch.load(tmp_path / "out" / "model.pt", weights_only=True)
    assert torch.allclose(trained["positional_embedding"], weights["positional_embedding"])  # started there


def test_a_missing_file_system_package_is_refused_on_the_command_line(capsys) -> None:
    for flag in ("--output", "--pretrained", "--resume", "--eval-world", "--zeroshot-dir", "--val-shards"):
        with pytest.raises(SystemExit) as exit_info:
            options_from_args(["--shards", "d/0.tar", flag, "abfs://container/x"])
        assert exit_info.value.code == 2
        error = capsys.readouterr().err
        assert f"argument {flag}" in error and "abfs:// file system is not installed" in error
