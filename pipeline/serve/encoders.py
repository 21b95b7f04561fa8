"""The exported encoders in onnxruntime, with the torch-free tokenizer and preprocessing."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pipeline.errors import UserInputError
from pipeline.export.manifest import read_manifest
from pipeline.serve.preprocess import Preprocess
from pipeline.serve.tokenizer import load_tokenizer

log = logging.getLogger(__name__)


class Encoders:
    """``text(tokens)`` and ``image(pixels)``: one onnxruntime session each, on the CPU."""

    def __init__(self, folder: str | Path, threads: int = 0) -> None:
        import onnxruntime

        folder = Path(folder)
        self.manifest: dict[str, Any] = read_manifest(folder)
        self.preprocess = Preprocess.from_manifest(self.manifest["image"])
        reason = self.preprocess.supported()
        if reason:
            raise UserInputError(f"{folder}: the model's preprocessing uses {reason}")
        files = self.manifest["files"]
        self.tokenizer = load_tokenizer(folder, self.manifest)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._sessions = {}
        for role in ("image", "text"):
            path = folder / files[f"{role}_encoder"]
            try:
                self._sessions[role] = onnxruntime.InferenceSession(
                    str(path), options, providers=["CPUExecutionProvider"]
                )
            except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
                raise UserInputError(f"{path}: onnxruntime cannot load it ({exc})") from exc
        inputs = self.manifest.get("inputs", {})
        self._input = {"image": inputs.get("image", "pixels"), "text": inputs.get("text", "tokens")}
        self.dim = int(self.manifest["embed_dim"])
        log.info("loaded %s (%d-d) from %s", self.manifest["model"], self.dim, folder)

    def run(self, kind: str, batch: np.ndarray) -> np.ndarray:
        """Embeddings (unit length) of a batch of token ids (``text``) or pixels (``image``)."""
        return self._sessions[kind].run(None, {self._input[kind]: batch})[0]

    def tokens(self, texts: list[str]) -> np.ndarray:
        """Model inputs of texts."""
        return self.tokenizer(texts)

    def pixels(self, images: list[Image.Image]) -> np.ndarray:
        """Model inputs of decoded images."""
        return self.preprocess.batch(images)
