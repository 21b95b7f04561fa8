"""Loading an open_clip model, with clear errors before any Spark work.

The score job loads it once per worker process through its step's ``setup``
(:class:`pipeline.score.shard_scorer.ScoreShard`); the executor owns that lifetime.

Besides every config open_clip ships, ``corpusforge-tiny`` (64 px ViT, 3 layers) is registered:
it trains in minutes on a CPU and is what the tests and the demo use.

``--pretrained`` is an open_clip tag or a checkpoint file: a local path or any fsspec URL
(``s3://``, ``gs://``, ``hdfs://``, ...). A remote file is checked where it is, then copied once
per machine to the local cache of :mod:`pipeline.remote_cache` (on Spark executors too) and
loaded from there; a changed remote file is copied again.

A checkpoint trained with another tokenizer (``corpusforge train --tokenizer bert-chinese``, ...)
carries it (:mod:`pipeline.score.tokenizer`): the model's text tower is built for it and the
captions are tokenized with it. ``--model cn_clip:NAME`` loads a Chinese-CLIP checkpoint in
cn_clip's own format (:mod:`pipeline.score.cn_clip_model`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import UserInputError
from pipeline.remote import exists
from pipeline.remote_cache import stage
from pipeline.score.cn_clip_model import architecture, is_cn_clip, load_cn_clip
from pipeline.score.tokenizer import checkpoint_tokenizer, text_config

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).parent / "model_configs"


@dataclass
class LoadedModel:
    """A model in eval mode with its own preprocessing and tokenizer."""

    model: Any
    preprocess: Any
    tokenizer: Any
    device: str
    name: str
    pretrained: str


def register_configs() -> None:
    """Make the bundled model configs known to open_clip (idempotent)."""
    import open_clip

    if "corpusforge-tiny" not in open_clip.list_models():
        open_clip.add_model_config(CONFIG_DIR)


def resolve_device(device: str) -> str:
    """``auto`` means the GPU when one is visible, else the CPU."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserInputError(f"--device {device} asked for, but no GPU is visible")
    return device


def check_model(name: str, pretrained: str) -> None:
    """Raise ``UserInputError`` unless the model name exists and the weights can be found."""
    import open_clip

    register_configs()
    if is_cn_clip(name):
        architecture(name)
        if not pretrained or not _looks_like_path(pretrained):
            raise UserInputError(f"--model {name}: --pretrained must name a Chinese-CLIP checkpoint file")
        if not exists(pretrained, "--pretrained"):
            raise UserInputError(f"--pretrained {pretrained}: no such checkpoint file")
        return
    if name not in open_clip.list_models():
        raise UserInputError(f"--model {name!r} is not an open_clip model; see open_clip.list_models()")
    if _looks_like_path(pretrained):
        if not exists(pretrained, "--pretrained"):
            raise UserInputError(f"--pretrained {pretrained}: no such checkpoint file")
    elif pretrained and pretrained not in open_clip.list_pretrained_tags_by_model(name):
        tags = open_clip.list_pretrained_tags_by_model(name)
        raise UserInputError(f"--pretrained {pretrained!r} is not a tag of {name} (known: {tags}) nor a file")


def weights_file(pretrained: str) -> str:
    """What open_clip is given as ``pretrained``: a tag or local path as it is, a remote file's
    local copy (staged to the cache on first use, see :mod:`pipeline.remote_cache`)."""
    if not _looks_like_path(pretrained):
        return pretrained
    return str(stage(pretrained, "--pretrained"))


def load_model(name: str, pretrained: str, device: str = "auto") -> LoadedModel:
    """Load an open_clip model and its preprocessing, in eval mode (a remote checkpoint through the cache)."""
    import open_clip

    device = resolve_device(device)
    check_model(name, pretrained)
    weights = weights_file(pretrained)
    if is_cn_clip(name):
        model, preprocess, cn_tokenizer = load_cn_clip(name, weights, pretrained, device)
        log.info("loaded Chinese-CLIP %s (%s) on %s", name, pretrained, device)
        return LoadedModel(model, preprocess, cn_tokenizer, device, name, pretrained)
    tokenizer = checkpoint_tokenizer(weights) if _looks_like_path(pretrained) else None
    text = {}
    if tokenizer is not None:
        base = (open_clip.get_model_config(name) or {}).get("text_cfg", {})
        text = {"text_cfg": text_config(base, tokenizer)}
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            name, pretrained=weights or None, device=device, weights_only=True, **text
        )
    except (RuntimeError, KeyError, ValueError, OSError) as exc:
        raise UserInputError(f"cannot load {name} with weights {pretrained!r}: {_short(exc)}") from exc
    except Exception as exc:  # noqa: BLE001 - hub or unpickling errors have many types
        raise UserInputError(f"cannot load {name} with weights {pretrained!r}: {_short(exc)}") from exc
    model.eval()
    loaded = LoadedModel(
        model, preprocess, tokenizer or open_clip.get_tokenizer(name), device, name, pretrained
    )
    shown = f", tokenizer {tokenizer.name}" if tokenizer is not None else ""
    log.info("loaded %s (%s%s) on %s", name, pretrained or "random init", shown, device)
    return loaded


def _looks_like_path(pretrained: str) -> bool:
    return any(ch in pretrained for ch in "/\\") or pretrained.endswith(
        (".pt", ".pth", ".bin", ".safetensors")
    )


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"
