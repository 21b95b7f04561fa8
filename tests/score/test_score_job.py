"""The score job on real raw shards with a real (tiny) open_clip model."""

from __future__ import annotations

import copy
import io
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from pipeline.errors import UserInputError
from tests.stages import check_inputs
from tests.stages import score as run
from tests.stages import score_options as options_from_args


def score_options(dataset: Path, checkpoint: Path, *extra: str):
    return options_from_args(
        [
            "--dataset",
            str(dataset),
            "--model",
            "corpusforge-tiny",
            "--pretrained",
            str(checkpoint),
            "--batch-size",
            "16",
            *extra,
        ]
    )


def raw_images(dataset: Path) -> dict[str, tuple[bytes, str]]:
    out = {}
    for path in sorted((dataset / "raw").glob("*.tar")):
        with tarfile.open(path) as tar:
            names = tar.getnames()
            for name in names:
                if name.endswith(".jpg"):
                    key = name[:-4]
                    out[key] = (tar.extractfile(name).read(), tar.extractfile(f"{key}.txt").read().decode())
    return out


@pytest.fixture
def dataset(downloaded: Path, tmp_path: Path) -> Path:
    copy_ = tmp_path / "dataset"
    shutil.copytree(downloaded, copy_)
    return copy_


def test_scores_equal_a_direct_open_clip_computation(spark, dataset: Path, random_checkpoint: Path) -> None:
    import open_clip

    summary = run(spark, score_options(dataset, random_checkpoint, "--save-embeddings"))
    images = raw_images(dataset)
    assert summary["scored"] == len(images) > 0
    model, _, preprocess = open_clip.create_model_and_transforms(
        "corpusforge-tiny", pretrained=str(random_checkpoint)
    )
    model.eval()
    tokenizer = open_clip.get_tokenizer("corpusforge-tiny")
    for path in sorted((dataset / "scores").glob("*.parquet")):
        table = pq.read_table(path).to_pylist()
        embeddings = np.load(
            path.with_name(path.stem + "_image.npy").parent / "embeddings" / f"{path.stem}_image.npy"
        )
        assert embeddings.dtype == np.float16 and embeddings.shape[0] == len(table)
        for i, row in enumerate(table):
            data, caption = images[row["uid"]]
            with torch.no_grad():
                image = model.encode_image(
                    preprocess(Image.open(io.BytesIO(data)).convert("RGB"))[None], normalize=True
                )
                text = model.encode_text(tokenizer([caption]), normalize=True)
            expected = float((image * text).sum())
            assert abs(row["clip_score"] - expected) <= 1e-4
            assert np.abs(embeddings[i].astype(np.float32) - image[0].numpy()).max() < 2e-3
            assert (row["model"], row["pretrained"]) == ("corpusforge-tiny", str(random_checkpoint))


def test_rerun_resumes_and_another_model_needs_overwrite(
    spark, dataset: Path, random_checkpoint: Path, tmp_path: Path
) -> None:
    first = run(spark, score_options(dataset, random_checkpoint))
    stamp = (dataset / "scores" / "00000.parquet").stat().st_mtime_ns
    again = run(spark, score_options(dataset, random_checkpoint))
    assert again["shards_resumed"] == again["shards"] == 3 and again["scored_this_run"] == 0
    assert (dataset / "scores" / "00000.parquet").stat().st_mtime_ns == stamp
    assert again["distribution"]["quantiles"] == first["distribution"]["quantiles"]
    # A raw shard that was redone since (e.g. download --overwrite) is scored again.
    stats = dataset / "raw" / "00001_stats.json"
    stats.write_text(stats.read_text().replace('"seconds"', '"seconds_redone"'))
    redone = run(spark, score_options(dataset, random_checkpoint))
    assert redone["shards_resumed"] == 2 and redone["scored_this_run"] > 0
    other = tmp_path / "other.pt"
    shutil.copy(random_checkpoint, other)
    with pytest.raises(UserInputError, match="--overwrite"):
        run(spark, score_options(dataset, other))
    assert run(spark, score_options(dataset, other, "--overwrite"))["shards_resumed"] == 0


def test_summary_reports_what_thresholds_keep(spark, dataset: Path, random_checkpoint: Path) -> None:
    summary = run(
        spark, score_options(dataset, random_checkpoint, "--thresholds=-1,0.28,1", "--top-fractions", "0.5")
    )
    dist = summary["distribution"]
    assert dist["count"] == summary["scored"]
    assert dist["kept_at_threshold"]["-1"] == 1.0 and dist["kept_at_threshold"]["1"] == 0.0
    scores = np.concatenate(
        [pq.read_table(p).column("clip_score").to_numpy() for p in (dataset / "scores").glob("*.parquet")]
    )
    assert abs(dist["quantiles"]["0.5"] - np.median(scores)) <= 0.002
    assert abs(dist["threshold_for_top_fraction"]["0.5"] - np.median(scores)) <= 0.002
    assert sum(dist["histogram"]["counts"]) == len(scores)


def test_bad_models_and_checkpoints_fail_before_spark(
    dataset: Path, random_checkpoint: Path, tmp_path: Path
) -> None:
    with pytest.raises(UserInputError, match="no such checkpoint"):
        check_inputs("score", score_options(dataset, tmp_path / "missing.pt"))
    with pytest.raises(UserInputError, match="not an open_clip model"):
        check_inputs(
            "score",
            options_from_args(
                ["--dataset", str(dataset), "--model", "NoSuchModel", "--pretrained", str(random_checkpoint)]
            ),
        )
    wrong = tmp_path / "wrong.pt"
    torch.save({"not_a_clip_weight": torch.zeros(3)}, wrong)
    with pytest.raises(UserInputError, match="cannot load corpusforge-tiny"):
        check_inputs("score", score_options(dataset, wrong))
    pickled = tmp_path / "pickled.pt"
    torch.save({"state_dict": copy.deepcopy(Path("x"))}, pickled)  # arbitrary objects need unpickling code
    with pytest.raises(UserInputError, match="cannot load"):
        check_inputs("score", score_options(dataset, pickled))
    with pytest.raises(UserInputError, match="no complete raw shards"):
        check_inputs("score", score_options(tmp_path / "empty", random_checkpoint))


def _reverse_samples(tar_path: Path) -> None:
    """Rewrite a raw tar with its samples in reverse order (as if downloads had finished so)."""
    with tarfile.open(tar_path) as tar:
        members = [(info, tar.extractfile(info).read()) for info in tar]
    samples: dict[str, list] = {}
    for info, data in members:
        samples.setdefault(info.name.split(".", 1)[0], []).append((info, data))
    with tarfile.open(tar_path, "w") as tar:
        for key in reversed(list(samples)):
            for info, data in samples[key]:
                tar.addfile(info, io.BytesIO(data))


def test_scores_do_not_depend_on_the_order_downloads_finished_in(
    spark, dataset: Path, random_checkpoint: Path, tmp_path: Path
) -> None:
    reordered = tmp_path / "reordered"
    shutil.copytree(dataset, reordered)
    for tar_path in (reordered / "raw").glob("*.tar"):
        _reverse_samples(tar_path)
    batch = "7"  # so that shards end in a short batch, which now holds other pairs
    run(spark, score_options(dataset, random_checkpoint, "--batch-size", batch))
    assert any(len(pq.read_table(p)) % 7 for p in (dataset / "scores").glob("*.parquet"))
    run(spark, score_options(reordered, random_checkpoint, "--batch-size", batch))

    def scores(root: Path) -> dict[str, float]:
        rows = [r for p in sorted((root / "scores").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
        return {r["uid"]: r["clip_score"] for r in rows}

    first, second = scores(dataset), scores(reordered)
    assert len(first) > 7 and first == second  # bit for bit
