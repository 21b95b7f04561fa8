"""Training runs end to end on tiny shards: exact resume, outputs, evaluation, failures."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest
import torch

from pipeline.errors import UserInputError
from pipeline.synthetic.scenes import Scene, render
from pipeline.synthetic.world import generate_world, held_out_spec
from pipeline.train.loop import train, weights_digest
from pipeline.train.options import options_from_args


def run(shards: Path, output: Path, *extra: str) -> dict:
    return train(
        options_from_args(
            [
                "--shards",
                f"{shards}/{{000000..000003}}.tar",
                "--output",
                str(output),
                "--batch-size",
                "8",
                "--steps",
                "6",
                "--warmup-steps",
                "2",
                "--lr",
                "1e-3",
                "--shuffle-buffer",
                "20",
                "--log-every",
                "2",
                "--no-tensorboard",
                "--threads",
                "1",
                *extra,
            ]
        )
    )


def state_dict(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def straight(shards: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six steps in one go with 2 loader workers, checkpoints at steps 3 and 6."""
    out = tmp_path_factory.mktemp("straight")
    summary = run(shards, out, "--workers", "2", "--save-every", "3", "--tensorboard")
    assert summary["steps"] == 6 and summary["samples_this_run"] == 48
    return out


def test_resume_from_the_middle_gives_identical_weights(straight: Path, shards: Path, tmp_path: Path) -> None:
    # 3 batches consumed: the resumed loader must continue with the second worker.
    (tmp_path / "checkpoints").mkdir()
    shutil.copy(straight / "checkpoints" / "step_00000003.pt", tmp_path / "checkpoints")
    summary = run(shards, tmp_path, "--workers", "2", "--save-every", "3", "--resume", "latest")
    assert summary["steps"] == 6 and summary["steps_this_run"] == 3
    ours, theirs = state_dict(tmp_path / "model.pt"), state_dict(straight / "model.pt")
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    final = torch.load(tmp_path / "checkpoints" / "step_00000006.pt", weights_only=True)
    reference = torch.load(straight / "checkpoints" / "step_00000006.pt", weights_only=True)
    assert final["data"] == reference["data"]  # same stream positions, per worker
    assert str(final["optimizer"]) == str(reference["optimizer"])


def test_resume_with_accumulation_and_no_workers(shards: Path, tmp_path: Path) -> None:
    extra = ("--workers", "0", "--accum-freq", "2", "--save-every", "3")
    run(shards, tmp_path / "a", *extra)
    (tmp_path / "b" / "checkpoints").mkdir(parents=True)
    shutil.copy(tmp_path / "a" / "checkpoints" / "step_00000003.pt", tmp_path / "b" / "checkpoints")
    run(shards, tmp_path / "b", *extra, "--resume", str(tmp_path / "b" / "checkpoints" / "step_00000003.pt"))
    a, b = state_dict(tmp_path / "a" / "model.pt"), state_dict(tmp_path / "b" / "model.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_outputs_metrics_and_checkpoint_contents(straight: Path) -> None:
    assert sorted(p.name for p in (straight / "checkpoints").iterdir()) == [
        "step_00000003.pt",
        "step_00000006.pt",
    ]
    checkpoint = torch.load(straight / "checkpoints" / "step_00000006.pt", weights_only=True)
    assert checkpoint["format"] == "corpusforge-train/1" and checkpoint["step"] == 6
    assert set(checkpoint) >= {"state_dict", "optimizer", "scaler", "data", "rng", "options"}
    lines = [json.loads(line) for line in (straight / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [2, 4, 6]
    assert all(0 < line["train/loss"] < 10 and line["train/samples_per_s"] > 0 for line in lines)
    assert lines[0]["train/lr"] == pytest.approx(1e-3)  # after warm-up
    csv_rows = (straight / "metrics.csv").read_text().splitlines()
    assert csv_rows[0] == "step,name,value" and any(row.startswith("6,train/loss,") for row in csv_rows)
    assert list((straight / "tensorboard").glob("events.out.tfevents.*"))
    summary = json.loads((straight / "summary.json").read_text())
    assert summary["corrupt_samples"] == 0 and len(summary["weights_sha256_per_rank"]) == 1


def write_image_folder(root: Path) -> Path:
    import random

    rng = random.Random(0)
    for label in ("red_circle", "blue_square", "green_triangle"):
        colour, shape = label.split("_")
        (root / label).mkdir(parents=True)
        for i in range(4):
            scene = Scene(shape, colour, 1, "centre", "grey", "plain")
            render(scene, (80, 64), rng).save(root / label / f"{i}.jpg")
    (root / "red_circle" / "broken.jpg").write_bytes(b"not a jpeg")
    return root


def test_zero_shot_and_retrieval_evaluation_during_and_after_training(
    shards: Path, val_shards: Path, tmp_path: Path
) -> None:
    folder = write_image_folder(tmp_path / "folder")
    (tmp_path / "prompts.txt").write_text("a {}\nthe {} shape\n")
    summary = run(
        shards,
        tmp_path / "out",
        "--workers",
        "0",
        "--steps",
        "4",
        "--eval-every",
        "2",
        "--eval-world",
        str(generate_world(tmp_path / "world", held_out_spec(images=24))),
        "--zeroshot-dir",
        str(folder),
        "--zeroshot-templates",
        str(tmp_path / "prompts.txt"),
        "--val-shards",
        f"{val_shards}/000000.tar",
        "--val-max-samples",
        "30",
    )
    assert (tmp_path / "world" / "world.parquet").exists()  # generated on first use
    expected = {"world/zeroshot_top1", "world/zeroshot_top5", "folder/zeroshot_top1", "val/image_to_text_R@1"}
    expected |= {
        f"{s}/{d}_R@{k}"
        for s in ("world", "val")
        for d in ("image_to_text", "text_to_image")
        for k in (1, 5, 10)
    }
    assert expected <= set(summary["eval"])
    assert "folder/zeroshot_top5" not in summary["eval"]  # only 3 classes
    assert all(0.0 <= value <= 1.0 for value in summary["eval"].values())
    assert summary["eval"]["val/image_to_text_R@10"] >= summary["eval"]["val/image_to_text_R@1"]
    lines = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines if "world/zeroshot_top1" in line] == [2, 4]


def test_corrupt_samples_are_counted_in_the_summary(shards: Path, tmp_path: Path) -> None:
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copy(shards / "000000.tar", mixed / "000000.tar")
    for i in (1, 2, 3):
        with tarfile.open(mixed / f"00000{i}.tar", "w") as tar:
            for name, payload in [
                ("bad.jpg", b"not an image"),
                ("bad.txt", b"a caption"),
                ("../x.jpg", b"x"),
            ]:
                info = tarfile.TarInfo(name)
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    # 48 usable samples an epoch: 12 steps of 8 are two epochs, each meeting 3 x 2 bad samples.
    summary = run(mixed, tmp_path / "out", "--workers", "0", "--steps", "12", "--shuffle-buffer", "0")
    assert summary["corrupt_samples"] >= 6


def test_no_usable_sample_is_a_clear_error_not_a_hang(tmp_path: Path) -> None:
    for i in range(4):
        with tarfile.open(tmp_path / f"{i:06d}.tar", "w") as tar:
            for name, payload in [(f"k{i}.jpg", b"not an image"), (f"k{i}.txt", b"caption")]:
                info = tarfile.TarInfo(name)
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    with pytest.raises(UserInputError, match="no usable sample"):
        run(tmp_path, tmp_path / "out", "--workers", "2")


def test_bad_inputs_are_refused_before_training(shards: Path, tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="not found"):
        train(options_from_args(["--shards", f"{tmp_path}/{{0..1}}.tar", "--output", str(tmp_path)]))
    with pytest.raises(UserInputError, match="is not an open_clip model"):
        run(shards, tmp_path / "o", "--model", "NoSuchModel")
    with pytest.raises(UserInputError, match="CLIP contrastive loss only"):
        run(shards, tmp_path / "o", "--model", "ViT-B-16-SigLIP")
    with pytest.raises(UserInputError, match="fp16 needs a GPU"):
        run(shards, tmp_path / "o", "--precision", "fp16", "--device", "cpu")
    torch.save({"state_dict": {}}, tmp_path / "plain.pt")
    with pytest.raises(UserInputError, match="not a corpusforge training checkpoint"):
        run(shards, tmp_path / "o", "--resume", str(tmp_path / "plain.pt"))


def test_bf16_autocast_and_gradient_checkpointing_train_on_cpu(shards: Path, tmp_path: Path) -> None:
    summary = run(
        shards, tmp_path, "--workers", "0", "--steps", "2", "--precision", "bf16", "--grad-checkpointing"
    )
    assert summary["steps"] == 2 and summary["final_loss"] == summary["final_loss"]  # not NaN
    import open_clip

    model = open_clip.create_model("corpusforge-tiny", pretrained=str(tmp_path / "model.pt"))
    assert weights_digest(model) == summary["weights_sha256_per_rank"][0]
