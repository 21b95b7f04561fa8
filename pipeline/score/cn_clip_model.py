"""Chinese-CLIP (``cn_clip``) checkpoints in their own format, for the score job.

``--model cn_clip:NAME --pretrained FILE`` scores with a Chinese-CLIP model: ``NAME`` is one of
cn_clip's released architectures (``RN50``, ``ViT-B-16``, ``ViT-L-14``, ``ViT-L-14-336``,
``ViT-H-14``) or an explicit ``VISION@TEXT`` pair of the configs cn_clip ships
(``cn_clip/clip/model_configs``, e.g. ``ViT-B-32@RBT3-chinese``, image size 224). ``FILE`` is a
checkpoint as cn_clip's trainer writes it and ``cn_clip.clip.load_from_name`` reads it: a dict
whose ``state_dict`` holds the weights, their names prefixed ``module.`` when saved from
DistributedDataParallel (the released ``clip_cn_*.pt`` files are such checkpoints). Weights are
never downloaded: the file is a local path or an fsspec URL (copied to the local cache).

The model is cn_clip's own ``CLIP`` (built by ``cn_clip.clip.utils.create_model``, float32),
wrapped so it answers like an open_clip model (``encode_image``/``encode_text`` with
``normalize``); its tokenizer is cn_clip's BERT tokenizer (context length 52, as cn_clip's
``tokenize``), its preprocessing cn_clip's ``image_transform`` (squashed resize, no crop).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from pathlib import Path
from typing import Any

from pipeline.errors import UserInputError

log = logging.getLogger(__name__)

PREFIX = "cn_clip:"
CONTEXT_LENGTH = 52  # cn_clip's tokenize() default, what its models were trained with


def is_cn_clip(name: str) -> bool:
    """Whether ``--model`` names a Chinese-CLIP architecture."""
    return name.startswith(PREFIX)


def _configs() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("cn_clip")
    if spec is None or spec.origin is None:
        raise UserInputError(
            "--model cn_clip:...: the cn_clip package is not installed (pip install cn_clip --no-deps)"
        )
    return Path(spec.origin).parent / "clip" / "model_configs"


def architecture(name: str) -> tuple[str, int]:
    """(``VISION@TEXT``, input resolution) of ``cn_clip:NAME``; ``UserInputError`` if unknown."""
    arch = name[len(PREFIX) :]
    configs = _configs()
    from cn_clip.clip.utils import _MODEL_INFO

    if arch in _MODEL_INFO:
        return _MODEL_INFO[arch]["struct"], int(_MODEL_INFO[arch]["input_resolution"])
    vision, _, text = arch.partition("@")
    if text and (configs / f"{vision}.json").is_file() and (configs / f"{text}.json").is_file():
        resolution = json.loads((configs / f"{vision}.json").read_text())["image_resolution"]
        return arch, int(resolution)
    known = sorted(_MODEL_INFO) + [
        "VISION@TEXT of " + ", ".join(sorted(p.stem for p in configs.glob("*.json")))
    ]
    raise UserInputError(f"--model {name}: not a Chinese-CLIP architecture (known: {'; '.join(known)})")


class CnClipModel:
    """cn_clip's CLIP with open_clip's encoder signatures (what the score job calls)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.logit_scale = model.logit_scale

    def encode_image(self, pixels: Any, normalize: bool = False) -> Any:
        features = self.model.encode_image(pixels)
        return features / features.norm(dim=-1, keepdim=True) if normalize else features

    def encode_text(self, tokens: Any, normalize: bool = False) -> Any:
        features = self.model.encode_text(tokens)
        return features / features.norm(dim=-1, keepdim=True) if normalize else features

    def eval(self) -> CnClipModel:
        self.model.eval()
        return self

    def to(self, device: str) -> CnClipModel:
        self.model.to(device)
        return self


class CnClipTokenizer:
    """cn_clip's ``tokenize`` as an open_clip-style tokenizer object."""

    context_length = CONTEXT_LENGTH

    def __call__(self, texts: str | list[str], context_length: int | None = None) -> Any:
        from cn_clip.clip import tokenize

        return tokenize(texts, context_length=context_length or self.context_length)


def load_cn_clip(
    name: str, weights: str, shown: str, device: str
) -> tuple[CnClipModel, Any, CnClipTokenizer]:
    """(model in eval mode on ``device``, preprocessing, tokenizer) from a cn_clip checkpoint file."""
    import torch

    struct, resolution = architecture(name)
    if not weights:
        raise UserInputError(
            f"--model {name}: give the checkpoint file with --pretrained (weights are never downloaded)"
        )
    try:
        checkpoint = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling errors have many types
        raise UserInputError(f"--pretrained {shown}: not a readable checkpoint ({_short(exc)})") from exc
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise UserInputError(
            f"--pretrained {shown}: not a Chinese-CLIP checkpoint (a dict with 'state_dict', as cn_clip's "
            "trainer saves)"
        )
    from cn_clip.clip.utils import create_model, image_transform

    chatter = io.StringIO()
    try:
        with contextlib.redirect_stdout(chatter):  # create_model prints the configs it reads
            model = create_model(struct, checkpoint)
    except (RuntimeError, KeyError, ValueError) as exc:
        raise UserInputError(f"--pretrained {shown}: does not fit cn_clip {struct} ({_short(exc)})") from exc
    log.debug("cn_clip: %s", chatter.getvalue().strip())
    model.float()  # create_model makes it half precision; the score job computes in float32 (autocast on GPU)
    wrapped = CnClipModel(model).to(device).eval()
    return wrapped, image_transform(resolution), CnClipTokenizer()


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"
