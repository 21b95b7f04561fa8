"""The score job on Chinese captions: a checkpoint that carries its tokenizer, and Chinese-CLIP's format."""

from __future__ import annotations

import contextlib
import io
import random
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from pipeline.dataset import Dataset
from pipeline.errors import UserInputError
from pipeline.score.model import check_model, load_model, register_configs
from pipeline.score.tokenizer import text_config
from pipeline.shards.raw_writer import SampleRecord
from pipeline.synthetic.scenes import random_scene, render
from pipeline.train.tokenizer_choice import build_tokenizer
from schemas import RAW_SHARD_SCHEMA
from testkit.raw_shards import write_raw_shard
from tests.stages import score, score_options

SAMPLES = 6


@pytest.fixture(scope="module")
def zh_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One committed raw shard of scenes with Chinese (and code-mixed) captions."""
    root = tmp_path_factory.mktemp("zh_raw") / "dataset"
    rng = random.Random(11)
    records = []
    for i in range(SAMPLES):
        scene = random_scene(rng)
        buffer = io.BytesIO()
        render(scene, (96, 80), rng).save(buffer, format="JPEG")
        row = {f.name: None for f in RAW_SHARD_SCHEMA}
        caption = scene.caption_in("zh" if i % 3 else "zh-en")
        row.update(uid=f"{i:032x}", row_index=i, url=f"http://img.test/{i}", caption=caption)
        size = len(buffer.getvalue())
        row.update(status="success", stored_bytes=size, original_bytes=size)
        records.append(SampleRecord(row, buffer.getvalue()))
    write_raw_shard(Dataset(str(root)), 0, records)
    return root


def _pairs(dataset: Path) -> tuple[list[str], list[Image.Image], list[str]]:
    raw = Dataset(str(dataset)).raw.shard(0)
    captions = {r["uid"]: r["caption"] for r in raw.successes(["uid", "caption"])}
    uids, images = [], []
    for key, data in raw.images():
        uids.append(key)
        images.append(Image.open(io.BytesIO(data)).convert("RGB"))
    return uids, images, [captions[u] for u in uids]


def _scored(spark, raw: Path, target: Path, model: str, weights: Path) -> dict[str, float]:
    shutil.copytree(raw, target)
    args = ["--dataset", str(target), "--model", model, "--pretrained", str(weights), "--batch-size", "4"]
    score(spark, score_options([*args, "--device", "cpu"]))
    table = pq.read_table(target / "scores" / "00000.parquet").to_pylist()
    return {row["uid"]: row["clip_score"] for row in table}


@pytest.fixture(scope="module")
def tokenizer_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random corpusforge-tiny whose text tower reads the bert-chinese vocabulary, saved as the
    trainer saves model.pt: {"state_dict": ..., "tokenizer": record}."""
    import open_clip

    register_configs()
    tokenizer = build_tokenizer("bert-chinese", 32, [])
    base = open_clip.get_model_config("corpusforge-tiny")["text_cfg"]
    torch.manual_seed(3)
    model = open_clip.create_model("corpusforge-tiny", text_cfg=text_config(base, tokenizer))
    path = tmp_path_factory.mktemp("zh_ckpt") / "model.pt"
    torch.save({"state_dict": model.state_dict(), "tokenizer": tokenizer.record()}, path)
    return path


def test_score_job_tokenizes_with_the_checkpoint_tokenizer(
    spark, zh_raw: Path, tokenizer_checkpoint: Path, tmp_path: Path
) -> None:
    scores = _scored(spark, zh_raw, tmp_path / "dataset", "corpusforge-tiny", tokenizer_checkpoint)
    loaded = load_model("corpusforge-tiny", str(tokenizer_checkpoint), "cpu")
    uids, images, captions = _pairs(zh_raw)
    with torch.no_grad():
        image = loaded.model.encode_image(torch.stack([loaded.preprocess(i) for i in images]), normalize=True)
        text = loaded.model.encode_text(loaded.tokenizer(captions), normalize=True)
    expected = (image * text).sum(dim=1).numpy()
    assert sorted(scores) == sorted(uids)
    np.testing.assert_allclose([scores[u] for u in uids], expected, atol=1e-4)


@pytest.fixture(scope="module")
def cn_clip_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Randomly initialised Chinese-CLIP RN50 (RBT3 text), saved as cn_clip's trainer saves it: half
    precision weights named ``module.*`` (DistributedDataParallel) under ``state_dict``."""
    from cn_clip.clip.utils import create_model

    torch.manual_seed(5)
    with contextlib.redirect_stdout(io.StringIO()):
        model = create_model("RN50@RBT3-chinese")
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    path = tmp_path_factory.mktemp("cn_clip") / "epoch_latest.pt"
    torch.save({"epoch": 1, "step": 1, "name": "random", "state_dict": state, "optimizer": {}}, path)
    return path


def test_score_job_scores_with_a_cn_clip_checkpoint(
    spark, zh_raw: Path, cn_clip_checkpoint: Path, tmp_path: Path
) -> None:
    from cn_clip.clip import load_from_name, tokenize

    scores = _scored(spark, zh_raw, tmp_path / "dataset", "cn_clip:RN50", cn_clip_checkpoint)
    # The reference: cn_clip's own loader, tokenizer and preprocessing.
    with contextlib.redirect_stdout(io.StringIO()):
        model, preprocess = load_from_name(
            str(cn_clip_checkpoint),
            "cpu",
            vision_model_name="RN50",
            text_model_name="RBT3-chinese",
            input_resolution=224,
        )
    model.eval()
    uids, images, captions = _pairs(zh_raw)
    with torch.no_grad():
        image = model.encode_image(torch.stack([preprocess(i) for i in images]))
        text = model.encode_text(tokenize(captions))
    expected = torch.nn.functional.cosine_similarity(image, text).numpy()
    assert sorted(scores) == sorted(uids)
    np.testing.assert_allclose([scores[u] for u in uids], expected, atol=1e-4)


def test_cn_clip_models_are_checked_before_spark(
    cn_clip_checkpoint: Path, tokenizer_checkpoint: Path
) -> None:
    check_model("cn_clip:RN50", str(cn_clip_checkpoint))
    check_model("cn_clip:ViT-B-32@RBT3-chinese", str(cn_clip_checkpoint))
    with pytest.raises(UserInputError, match="not a Chinese-CLIP architecture"):
        check_model("cn_clip:RN18", str(cn_clip_checkpoint))
    with pytest.raises(UserInputError, match="must name a Chinese-CLIP checkpoint file"):
        check_model("cn_clip:RN50", "")
    with pytest.raises(UserInputError, match="no such checkpoint file"):
        check_model("cn_clip:RN50", str(cn_clip_checkpoint.with_name("missing.pt")))
    with pytest.raises(UserInputError, match="does not fit cn_clip RN50@RBT3-chinese"):
        load_model("cn_clip:RN50", str(tokenizer_checkpoint), "cpu")
