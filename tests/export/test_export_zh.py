"""corpusforge export of a model whose text tower reads the bert-chinese WordPiece tokenizer
(``onnx_export_zh``): the folder carries ``tokenizer.json``, the ONNX text encoder matches torch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from tokenizers import Tokenizer

from pipeline.errors import UserInputError
from pipeline.export.job import run_export
from pipeline.export.manifest import read_manifest
from pipeline.export.options import ExportOptions
from pipeline.export.tokenizer import standalone_json, text_section
from pipeline.score.model import load_model
from pipeline.score.tokenizer import train_wordpiece
from pipeline.serve.tokenizer import WordPieceIds

CAPTIONS = [
    "两个红色的圆形，位于条纹灰色背景的左侧",
    "两个red circles，位于条纹米色背景的上方",
    "three red circles at the left of a striped grey background",
    "Ünïcode CAFÉ 😀 IMG_1234.jpg わたし 한국어",
    "",
    "很长的标题" * 20,  # longer than the context: cut, [SEP] kept last
]


@pytest.fixture(scope="module")
def torch_model(zh_checkpoint: Path):
    return load_model("corpusforge-tiny", str(zh_checkpoint), device="cpu")


def client_ids(folder: Path, texts: list[str]) -> np.ndarray:
    """What a client does with the export's tokenizer.json: plain ``tokenizers``, nothing else."""
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    return np.array([encoding.ids for encoding in tokenizer.encode_batch(texts)], dtype=np.int64)


@pytest.mark.parametrize("rows", [slice(0, 1), slice(0, None)])
def test_onnxruntime_matches_torch_on_chinese_and_mixed_captions(
    onnx_export_zh: Path, torch_model, rows: slice
) -> None:
    texts = CAPTIONS[rows]
    reference_ids = torch_model.tokenizer(texts)
    ids = client_ids(onnx_export_zh, texts)
    assert ids.shape == (len(texts), 32) and np.array_equal(ids, reference_ids.numpy())
    assert (ids[:, 0] == 101).all() and (ids == 102).sum(axis=1).tolist() == [1] * len(texts)
    session = onnxruntime.InferenceSession(
        str(onnx_export_zh / "text_encoder.onnx"), providers=["CPUExecutionProvider"]
    )
    text = session.run(None, {"tokens": ids})[0]
    with torch.no_grad():
        expected = torch_model.model.encode_text(reference_ids, normalize=True).numpy()
    assert text.shape == (len(texts), 64)
    assert np.abs(text - expected).max() <= 1e-4
    assert np.allclose(np.linalg.norm(text, axis=1), 1, atol=1e-5)


def test_model_json_records_the_tokenizer(onnx_export_zh: Path) -> None:
    manifest = read_manifest(onnx_export_zh)
    assert manifest["model"] == "corpusforge-tiny" and manifest["embed_dim"] == 64
    text = manifest["text"]
    assert (text["kind"], text["name"], text["vocab"]) == ("wordpiece", "bert-chinese", "tokenizer.json")
    assert (text["context_length"], text["vocab_size"]) == (32, 21128)
    assert (text["start_id"], text["end_id"], text["pad_id"]) == (101, 102, 0)
    assert manifest["files"]["vocab"] == "tokenizer.json"
    check = manifest["verification"]
    assert check["passed"] and set(check["max_abs_diff"]) == {"1", "5"}
    assert all(v <= 1e-4 for diffs in check["max_abs_diff"].values() for v in diffs.values())
    assert sorted(p.name for p in onnx_export_zh.iterdir()) == sorted(
        [*manifest["files"].values(), "model.json"]
    )


def test_the_torchscript_exporter_works_too(zh_checkpoint: Path, tmp_path: Path) -> None:
    options = ExportOptions(
        checkpoint=str(zh_checkpoint), output=tmp_path, exporter="torchscript", verify_batches=(3,)
    )
    manifest = run_export(options)
    assert manifest["verification"]["passed"] and manifest["text"]["kind"] == "wordpiece"
    assert (tmp_path / "tokenizer.json").is_file() and (tmp_path / "model.json").is_file()


def test_a_learnt_wordpiece_tokenizer_json_gives_the_trainer_ids(tmp_path: Path) -> None:
    # wordpiece:N has other special ids than bert-chinese ([CLS] 2, [SEP] 3): the framing follows them.
    tokenizer = train_wordpiece([*CAPTIONS, "a blue square above a dotted background"], 300, 12)
    path = tmp_path / "tokenizer.json"
    path.write_text(standalone_json(tokenizer), encoding="utf-8")
    texts = [*CAPTIONS, "a blue square", "blue " * 9, "blue " * 10, "blue " * 11]
    assert np.array_equal(WordPieceIds(path, 12)(texts), tokenizer(texts).numpy())


def test_tokenizers_the_server_cannot_reproduce_are_refused(
    onnx_export_zh: Path, zh_checkpoint: Path, tmp_path: Path
) -> None:
    with pytest.raises(UserInputError, match="neither open_clip's default CLIP tokenizer nor"):
        text_section("hf-model", object())
    raw = tmp_path / "raw.json"  # the checkpoint's own JSON: no framing, padding nor truncation
    raw.write_text(torch.load(zh_checkpoint, weights_only=True)["tokenizer"]["tokenizer_json"])
    with pytest.raises(UserInputError, match="does not pad and truncate to the context length 32"):
        WordPieceIds(raw, 32)
    copy = tmp_path / "copy"
    shutil.copytree(onnx_export_zh, copy)
    manifest = json.loads((copy / "model.json").read_text())
    manifest["text"]["kind"] = "sentencepiece"
    (copy / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(UserInputError, match="text.kind 'sentencepiece' is not one of clip-bpe, wordpiece"):
        read_manifest(copy)
