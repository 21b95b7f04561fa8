"""corpusforge serve of a bert-chinese tokenizer model (``onnx_export_zh``) over real HTTP on
127.0.0.1: texts are tokenized with the export's tokenizer.json, embeddings equal torch's."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.score.model import load_model
from pipeline.serve.options import ServeModelOptions
from pipeline.serve.server import ModelServer
from tests.serve.test_server import TIMEOUT, request


@pytest.fixture(scope="module")
def server(onnx_export_zh: Path) -> Iterator[ModelServer]:
    with ModelServer(ServeModelOptions(model=onnx_export_zh, port=0)) as srv:
        yield srv


def test_chinese_text_embeddings_equal_torch(server: ModelServer, zh_checkpoint: Path) -> None:
    texts = ["两个红色的圆形，位于条纹灰色背景的左侧", "一只red cat在左边", "很长的标题" * 20]
    status, reply = request(f"{server.base_url}/v1/embed/text", {"texts": texts})
    assert status == 200 and reply["dim"] == 64 and reply["model"] == "corpusforge-tiny"
    loaded = load_model("corpusforge-tiny", str(zh_checkpoint), device="cpu")
    with torch.no_grad():
        expected = loaded.model.encode_text(loaded.tokenizer(texts), normalize=True).numpy()
    assert np.abs(np.array(reply["embeddings"]) - expected).max() <= 1e-4
    assert request(f"{server.base_url}/v1/model")[1]["text"]["kind"] == "wordpiece"


def test_the_wordpiece_serving_path_imports_no_torch(onnx_export_zh: Path) -> None:
    code = (
        "import sys; from pipeline.serve.encoders import Encoders; "
        f"e = Encoders({str(onnx_export_zh)!r}); v = e.run('text', e.tokens(['红色的圆形'])); "
        "assert v.shape == (1, 64), v.shape; assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=TIMEOUT)
