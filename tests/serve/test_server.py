"""corpusforge serve over real HTTP on 127.0.0.1, from the session's export (``onnx_export``)."""

from __future__ import annotations

import base64
import io
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.errors import UserInputError
from pipeline.score.model import load_model
from pipeline.serve.options import ServeModelOptions
from pipeline.serve.server import ModelServer
from pipeline.synthetic.world import WorldSpec, generate_world

TIMEOUT = 120  # generous: the CI machine is loaded


def request(
    url: str, body: Any = None, data: bytes | None = None, headers: dict | None = None
) -> tuple[int, Any]:
    """(status, JSON reply) of a GET (no body) or POST."""
    if body is not None:
        data, headers = json.dumps(body).encode(), {"Content-Type": "application/json"}
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def png(width: int, height: int, seed: int) -> bytes:
    array = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def server(onnx_export: Path) -> Iterator[ModelServer]:
    options = ServeModelOptions(model=onnx_export, port=0, max_items=16, max_body_mb=0.5)
    with ModelServer(options) as srv:
        yield srv


@pytest.fixture(scope="module")
def torch_model(random_checkpoint: Path):
    return load_model("corpusforge-tiny", str(random_checkpoint), device="cpu")


def test_text_embeddings_equal_torch(server: ModelServer, torch_model) -> None:
    texts = ["a red circle", "two blue squares at the left of a striped background", "café 東京 " * 20]
    status, reply = request(f"{server.base_url}/v1/embed/text", {"texts": texts})
    assert status == 200 and reply["dim"] == 64 and reply["model"] == "corpusforge-tiny"
    with torch.no_grad():
        expected = torch_model.model.encode_text(torch_model.tokenizer(texts), normalize=True).numpy()
    assert np.abs(np.array(reply["embeddings"]) - expected).max() <= 1e-4


def test_image_embeddings_equal_torch_json_and_multipart(server: ModelServer, torch_model) -> None:
    images = [png(120, 80, 1), png(64, 200, 2)]
    status, reply = request(f"{server.base_url}/v1/embed/image", {"images": [b64(i) for i in images]})
    assert status == 200
    pixels = torch.stack([torch_model.preprocess(Image.open(io.BytesIO(i))) for i in images])
    with torch.no_grad():
        expected = torch_model.model.encode_image(pixels, normalize=True).numpy()
    assert np.abs(np.array(reply["embeddings"]) - expected).max() <= 1e-4
    boundary = "corpusforgeboundary"
    parts = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="images"; filename="{n}.png"\r\n'
        f"Content-Type: image/png\r\n\r\n".encode()
        + image
        + b"\r\n"
        for n, image in enumerate(images)
    )
    body = parts + f"--{boundary}--\r\n".encode()
    status, uploaded = request(
        f"{server.base_url}/v1/embed/image",
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert status == 200
    assert np.abs(np.array(uploaded["embeddings"]) - expected).max() <= 1e-4


def test_similarity_is_the_cosine_matrix(server: ModelServer) -> None:
    texts, images = (
        ["a red circle", "a blue square"],
        [b64(png(90, 90, 3)), b64(png(50, 70, 4)), b64(png(70, 50, 5))],
    )
    status, reply = request(f"{server.base_url}/v1/similarity", {"texts": texts, "images": images})
    assert status == 200 and (reply["rows"], reply["columns"]) == ("texts", "images")
    _, text = request(f"{server.base_url}/v1/embed/text", {"texts": texts})
    _, image = request(f"{server.base_url}/v1/embed/image", {"images": images})
    expected = np.array(text["embeddings"]) @ np.array(image["embeddings"]).T
    assert np.abs(np.array(reply["similarity"]) - expected).max() <= 1e-5
    _, own = request(f"{server.base_url}/v1/similarity", {"texts": texts})
    assert own["columns"] == "texts" and np.allclose(np.diag(own["similarity"]), 1, atol=1e-5)


def test_model_health_and_metrics(server: ModelServer, onnx_export: Path) -> None:
    assert request(f"{server.base_url}/v1/model") == (
        200,
        json.loads((onnx_export / "model.json").read_text()),
    )
    assert request(f"{server.base_url}/healthz")[1]["status"] == "ok"
    metrics = request(f"{server.base_url}/metrics")[1]
    assert {"requests", "items", "batches", "mean_batch_size", "by_kind"} <= set(metrics)


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("embed/text", {"texts": "a dog"}, "'texts' must be a non-empty list of strings"),
        ("embed/text", {"texts": []}, "'texts' must be a non-empty list"),
        ("embed/text", {"texts": ["a", 3]}, "texts[1] must be a string, not int"),
        ("embed/text", {"words": ["a"]}, "'texts' must be"),
        ("embed/text", ["a"], "the body must be a JSON object"),
        ("embed/text", {"texts": ["a"] * 17}, "17 items in one request; at most 16"),
        ("embed/image", {"images": [b64(png(10, 10, 0)), "!!not base64!!"]}, "images[1] is not valid base64"),
        (
            "embed/image",
            {"images": [b64(png(10, 10, 0)), b64(b"hello")]},
            "images[1] is not a decodable image",
        ),
        ("embed/image", {"images": [7]}, "images[0] must be a base64 string, not int"),
        ("similarity", {}, "give 'texts', 'images' or both"),
        ("similarity", {"texts": ["a"], "images": "x"}, "'images' must be a non-empty list"),
    ],
)
def test_bad_input_is_a_400_naming_it(server: ModelServer, path: str, body: Any, message: str) -> None:
    status, reply = request(f"{server.base_url}/v1/{path}", body)
    assert status == 400 and message in reply["error"]


def test_a_too_large_body_is_refused(server: ModelServer) -> None:
    status, reply = request(f"{server.base_url}/v1/embed/text", {"texts": ["x" * 600_000]})
    assert status == 413 and "larger than 524288 bytes" in reply["error"]


@pytest.mark.parametrize(("max_batch", "batches"), [(4, 2), (1, 8)])
def test_concurrent_requests_are_batched(onnx_export: Path, max_batch: int, batches: int) -> None:
    # The batcher waits up to a minute for max_batch items, so 8 concurrent one-text requests make
    # exactly 8 / max_batch model runs: counted, not timed.
    options = ServeModelOptions(model=onnx_export, port=0, max_batch=max_batch, max_wait_ms=60_000)
    with ModelServer(options) as srv:
        results: list[tuple[int, Any]] = []
        threads = [
            threading.Thread(
                target=lambda i=i: results.append(
                    request(f"{srv.base_url}/v1/embed/text", {"texts": [f"caption {i}"]})
                )
            )
            for i in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=TIMEOUT)
        assert [status for status, _ in results] == [200] * 8
        metrics = request(f"{srv.base_url}/metrics")[1]["by_kind"]["text"]
    assert (metrics["requests"], metrics["items"], metrics["batches"]) == (8, 8, batches)
    assert metrics["largest_batch"] == max_batch and metrics["mean_batch_size"] == 8 / batches


def test_a_missing_or_incomplete_model_folder_is_refused(onnx_export: Path, tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="no such folder"):
        ModelServer(ServeModelOptions(model=tmp_path / "nothing", port=0))
    partial = tmp_path / "partial"
    shutil.copytree(onnx_export, partial)
    (partial / "text_encoder.onnx").unlink()
    with pytest.raises(UserInputError, match=r"text_encoder.onnx: missing \(text_encoder\)"):
        ModelServer(ServeModelOptions(model=partial, port=0))
    (partial / "model.json").unlink()
    with pytest.raises(UserInputError, match="model.json: missing"):
        ModelServer(ServeModelOptions(model=partial, port=0))


def test_the_serving_path_imports_no_torch() -> None:
    code = (
        "import sys, pipeline.cli, pipeline.serve.server; assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=TIMEOUT)


def test_serve_world_still_answers_to_serve_with_a_deprecation_warning(tmp_path: Path) -> None:
    world = generate_world(
        tmp_path / "world",
        WorldSpec(images=3, seed=1, benchmark_images=1, planted_duplicates=0, min_side=64, max_side=96),
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "pipeline.cli", "serve", "--world", str(world), "--port", str(port)]
    log = tmp_path / "stderr.txt"
    with open(log, "w") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (world / "urls.tsv").exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.2)
        url = next(word for word in (world / "urls.tsv").read_text().split() if word.startswith("http"))
        with urllib.request.urlopen(url, timeout=TIMEOUT) as reply:
            assert reply.status == 200 and reply.read()
    finally:
        process.terminate()
        process.wait(timeout=TIMEOUT)
    assert "'corpusforge serve --world' is deprecated" in log.read_text() and "serve-world" in log.read_text()
