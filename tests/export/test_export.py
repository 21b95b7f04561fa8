"""corpusforge export: the session's tiny checkpoint exported once (``onnx_export``), checked here."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch

from pipeline.cli import main
from pipeline.errors import UserInputError
from pipeline.export.manifest import read_manifest
from pipeline.export.options import ExportOptions
from pipeline.export.source import checkpoint_model_name, load_source
from pipeline.export.verify import VerificationError, verify
from pipeline.score.model import load_model
from pipeline.train.checkpoint import FORMAT


@pytest.fixture(scope="module")
def torch_model(random_checkpoint: Path):
    return load_model("corpusforge-tiny", str(random_checkpoint), device="cpu")


@pytest.mark.parametrize("batch", [1, 5])
def test_onnxruntime_matches_torch(onnx_export: Path, torch_model, batch: int) -> None:
    sessions = {role: onnxruntime.InferenceSession(str(onnx_export / f"{role}_encoder.onnx"),
                                                   providers=["CPUExecutionProvider"])
                for role in ("image", "text")}  # fmt: skip
    pixels = torch.randn(batch, 3, 64, 64, generator=torch.Generator().manual_seed(batch))
    tokens = torch_model.tokenizer([f"a photo of {'red ' * i}circles" for i in range(batch)])
    with torch.no_grad():
        image_ref = torch_model.model.encode_image(pixels, normalize=True).numpy()
        text_ref = torch_model.model.encode_text(tokens, normalize=True).numpy()
    image = sessions["image"].run(None, {"pixels": pixels.numpy()})[0]
    text = sessions["text"].run(None, {"tokens": tokens.numpy()})[0]
    assert image.shape == text.shape == (batch, 64)
    assert np.abs(image - image_ref).max() <= 1e-4
    assert np.abs(text - text_ref).max() <= 1e-4
    assert np.allclose(np.linalg.norm(image, axis=1), 1, atol=1e-5)


def test_model_json_describes_the_export(onnx_export: Path, random_checkpoint: Path) -> None:
    manifest = read_manifest(onnx_export)
    assert manifest == json.loads((onnx_export / "model.json").read_text())
    assert (manifest["model"], manifest["embed_dim"], manifest["normalized"]) == (
        "corpusforge-tiny",
        64,
        True,
    )
    assert manifest["image"]["size"] == 64
    assert manifest["image"]["mean"] == pytest.approx([0.48145466, 0.4578275, 0.40821073])
    assert manifest["image"]["std"] == pytest.approx([0.26862954, 0.26130258, 0.27577711])
    assert (manifest["image"]["interpolation"], manifest["image"]["resize_mode"]) == ("bicubic", "shortest")
    assert manifest["text"]["context_length"] == 32 and "SimpleTokenizer" in manifest["text"]["tokenizer"]
    assert (manifest["text"]["kind"], manifest["text"]["start_id"], manifest["text"]["end_id"]) == (
        "clip-bpe",
        49406,
        49407,
    )
    assert (manifest["opset"], manifest["exporter"]) == (18, "dynamo")
    assert manifest["checkpoint"]["sha256"] == hashlib.sha256(random_checkpoint.read_bytes()).hexdigest()
    check = manifest["verification"]
    assert check["passed"] and check["tolerance"] == 1e-4 and set(check["max_abs_diff"]) == {"1", "5"}
    assert all(v <= 1e-4 for diffs in check["max_abs_diff"].values() for v in diffs.values())
    assert sorted(p.name for p in onnx_export.iterdir()) == sorted(
        [*manifest["files"].values(), "model.json"]
    )


def test_a_different_model_fails_the_check(onnx_export: Path) -> None:
    torch.manual_seed(123)
    other = load_model("corpusforge-tiny", "", device="cpu")  # random weights, not the exported ones
    manifest = read_manifest(onnx_export)
    with pytest.raises(VerificationError, match="differs from torch by .* more than the tolerance"):
        verify(other, onnx_export, manifest["files"], manifest, (1,), 1e-4)


def test_a_train_checkpoint_names_its_model(random_checkpoint: Path, tmp_path: Path) -> None:
    state = torch.load(random_checkpoint, weights_only=True)
    path = tmp_path / "step_00000001.pt"
    torch.save({"format": FORMAT, "name": "corpusforge-tiny", "step": 1, "state_dict": state}, path)
    assert checkpoint_model_name(path) == "corpusforge-tiny"
    assert checkpoint_model_name(random_checkpoint) is None
    with pytest.raises(UserInputError, match="holds corpusforge-tiny, but --model ViT-B-32"):
        load_source(str(path), "ViT-B-32")


def test_a_plain_state_dict_needs_model(random_checkpoint: Path) -> None:
    with pytest.raises(UserInputError, match="does not name its model .* give --model"):
        load_source(str(random_checkpoint), "")


@pytest.mark.parametrize("content", [None, b"not a checkpoint at all"])
def test_missing_or_corrupt_checkpoint_exits_2(tmp_path: Path, caplog, content: bytes | None) -> None:
    path = tmp_path / "model.pt"
    if content is not None:
        path.write_bytes(content)
    code = main(
        ["export", "--checkpoint", str(path), "--model", "corpusforge-tiny", "--output", str(tmp_path / "o")]
    )
    assert code == 2
    expected = "not a readable PyTorch checkpoint" if content else "no such checkpoint file"
    assert str(path) in caplog.text and expected in caplog.text
    assert not (tmp_path / "o" / "model.json").exists()


def test_a_bad_format_is_refused(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--checkpoint", "x.pt", "--output", str(tmp_path), "--format", "tflite"])
    assert exit_info.value.code == 2 and "invalid choice: 'tflite'" in capsys.readouterr().err
    with pytest.raises(UserInputError, match="--format 'tflite' is not supported"):
        ExportOptions(checkpoint="x.pt", output=tmp_path, format="tflite")
