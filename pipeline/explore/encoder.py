"""Text and image queries embedded by the dataset's own CLIP model, as the score job embedded it."""

from __future__ import annotations

import logging
import threading

import numpy as np
from PIL import UnidentifiedImageError

from pipeline.errors import SampleError, UserInputError
from pipeline.image.options import ImageOptions

log = logging.getLogger(__name__)

#: An uploaded query image is checked against the download's decompression-bomb guard (its
#: default pixel limit) before it is decoded; any size and shape is accepted otherwise.
_UPLOAD_LIMITS = ImageOptions(min_image_size=0, max_aspect_ratio=float("inf"))


class QueryEncoder:
    """Loads the model once (the first query, or :meth:`load`) and embeds queries, L2-normalised."""

    def __init__(self, model: str, pretrained: str, device: str = "cpu") -> None:
        self.model_name = model
        self.pretrained = pretrained
        self.device = device
        self._loaded = None
        self._lock = threading.Lock()

    def check(self) -> None:
        """Raise ``UserInputError`` now if the model cannot be found (before serving any page)."""
        from pipeline.score.model import check_model

        try:
            check_model(self.model_name, self.pretrained)
        except UserInputError as exc:
            raise UserInputError(
                f"{exc}; the score job recorded these weights: give their new place with --pretrained"
            ) from exc

    def load(self):  # noqa: ANN201 - pipeline.score.model.LoadedModel, imported lazily (torch)
        from pipeline.score.model import load_model

        with self._lock:
            if self._loaded is None:
                self._loaded = load_model(self.model_name, self.pretrained, self.device)
            return self._loaded

    def text(self, query: str) -> np.ndarray:
        """The query's text embedding, shape ``(1, dim)``."""
        import torch

        loaded = self.load()
        with self._lock, torch.inference_mode():
            tokens = loaded.tokenizer([query]).to(loaded.device)
            return loaded.model.encode_text(tokens, normalize=True).float().cpu().numpy()

    def image(self, data: bytes, name: str = "upload") -> np.ndarray:
        """An image's embedding, shape ``(1, dim)``; ``UserInputError`` naming ``name`` if unreadable."""
        import torch

        from pipeline.image.decode import open_checked

        try:
            image = open_checked(data, _UPLOAD_LIMITS)
            image.load()
        except (SampleError, UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
            raise UserInputError(f"{name} is not an image this page can read: {exc}") from exc
        loaded = self.load()
        pixels = loaded.preprocess(image.convert("RGB")).unsqueeze(0).to(loaded.device)
        with self._lock, torch.inference_mode():
            return loaded.model.encode_image(pixels, normalize=True).float().cpu().numpy()
