"""The export's check: onnxruntime on the CPU against torch, end to end, at several batch sizes.

Texts go through the model's own tokenizer (open_clip's, or the WordPiece tokenizer a checkpoint
carries) into torch and through the torch-free tokenizer of :mod:`pipeline.serve.tokenizer` (over
the file written into the export folder) into onnxruntime; images through open_clip's preprocessing into
torch and through :mod:`pipeline.serve.preprocess` into onnxruntime. So the check covers what the
server computes, not only the graphs: token ids must be equal, pixels and embeddings within the
tolerance. A failed check raises :class:`VerificationError` naming the largest difference.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pipeline.export.manifest import IMAGE_INPUT, TEXT_INPUT
from pipeline.serve.preprocess import Preprocess
from pipeline.serve.tokenizer import load_tokenizer

log = logging.getLogger(__name__)

_WORDS = (
    "a photo of red blue striped circle square dog cat on the left",
    "café naïve 東京 it's 42 !!",
    "两个 红色的 圆形 位于 条纹 灰色 背景的 左侧 ， 。",
)
_VOCAB = " ".join(_WORDS).split()
_MODES = ("RGB", "L", "RGBA", "P", "RGB")


class VerificationError(RuntimeError):
    """The exported model does not compute what torch computes."""


def verification_texts(count: int, seed: int = 0) -> list[str]:
    """``count`` captions of varying length (one longer than any context, so truncation is checked)."""
    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(_VOCAB, size=int(rng.integers(1, 12)))) for _ in range(count)]
    if count > 1:
        texts[-1] = " ".join(_VOCAB * 12)
    return texts


def verification_images(count: int, seed: int = 0) -> list[Image.Image]:
    """``count`` noise-and-gradient images of varying size, aspect ratio and mode."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(count):
        width, height = (int(v) for v in rng.integers(40, 300, size=2))
        ramp = np.linspace(0, 255, width)[None, :, None] * rng.random(3)
        noise = rng.integers(0, 60, size=(height, width, 3))
        array = np.clip(ramp + noise, 0, 255).astype(np.uint8)
        images.append(Image.fromarray(array, "RGB").convert(_MODES[i % len(_MODES)]))
    return images


def verify(
    loaded: Any,
    folder: Path,
    files: dict[str, str],
    manifest: dict[str, Any],
    batches: tuple[int, ...],
    tolerance: float,
) -> dict[str, Any]:
    """Compare onnxruntime and torch; the result for model.json, or ``VerificationError``."""
    import onnxruntime
    import torch

    options = onnxruntime.SessionOptions()
    image_session = onnxruntime.InferenceSession(
        str(folder / files["image_encoder"]), options, providers=["CPUExecutionProvider"]
    )
    text_session = onnxruntime.InferenceSession(
        str(folder / files["text_encoder"]), options, providers=["CPUExecutionProvider"]
    )
    tokenizer = load_tokenizer(folder, {**manifest, "files": files})
    context_length = int(manifest["text"]["context_length"])
    preprocess = Preprocess.from_manifest(manifest["image"])
    results: dict[str, Any] = {}
    for batch in batches:
        texts = verification_texts(batch, seed=batch)
        images = verification_images(batch, seed=batch)
        reference_tokens = loaded.tokenizer(texts, context_length=context_length).numpy()
        tokens = tokenizer(texts)
        if not np.array_equal(tokens, reference_tokens):
            row = int(np.argwhere((tokens != reference_tokens).any(axis=1))[0][0])
            raise VerificationError(f"the torch-free tokenizer differs from the model's on {texts[row]!r}")
        reference_pixels = torch.stack([loaded.preprocess(image) for image in images])
        pixels = preprocess.batch(images)
        with torch.no_grad():
            image_ref = loaded.model.encode_image(reference_pixels, normalize=True).numpy()
            text_ref = loaded.model.encode_text(torch.from_numpy(tokens), normalize=True).numpy()
        image_out = image_session.run(None, {IMAGE_INPUT: pixels})[0]
        text_out = text_session.run(None, {TEXT_INPUT: tokens})[0]
        diffs = {
            "pixels": float(np.abs(pixels - reference_pixels.numpy()).max()),
            "image_embeddings": _diff(image_out, image_ref),
            "text_embeddings": _diff(text_out, text_ref),
        }
        results[str(batch)] = diffs
        log.info("batch %d: max abs diff %s", batch, diffs)
    worst = max(
        (value, f"{what.replace('_', ' ')} at batch {batch}")
        for batch, diffs in results.items()
        for what, value in diffs.items()
    )
    passed = worst[0] <= tolerance
    summary = {
        "tolerance": tolerance,
        "max_abs_diff": results,
        "passed": passed,
        "device": "cpu",
        "onnxruntime": onnxruntime.__version__,
        "torch": torch.__version__,
    }
    if not passed:
        raise VerificationError(
            f"onnxruntime differs from torch by {worst[0]:.3g} in the {worst[1]}, more than the "
            f"tolerance {tolerance:g}: the export is not usable (try --exporter torchscript, or report it)"
        )
    return summary


def _diff(actual: np.ndarray, expected: np.ndarray) -> float:
    if actual.shape != expected.shape:
        raise VerificationError(f"onnxruntime gave shape {actual.shape}, torch {expected.shape}")
    return float(np.abs(actual - expected).max())
