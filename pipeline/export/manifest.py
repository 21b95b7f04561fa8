"""The exported model folder: its file names and ``model.json``, read without torch.

``corpusforge export`` writes the folder; ``corpusforge serve`` reads it with :func:`read_manifest`,
which refuses a folder that is missing a file or whose ``model.json`` lacks a field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.errors import UserInputError

FORMAT = "corpusforge-onnx/1"
MANIFEST = "model.json"
IMAGE_ENCODER = "image_encoder.onnx"
TEXT_ENCODER = "text_encoder.onnx"
VOCAB = "bpe_simple_vocab_16e6.txt.gz"  # the CLIP tokenizer's file
WORDPIECE_FILE = "tokenizer.json"  # a WordPiece tokenizer's file (pipeline/export/tokenizer.py)
# Tokenizer kinds (model.json text.kind; a manifest without it is CLIP's, as before the field).
CLIP_BPE = "clip-bpe"
WORDPIECE = "wordpiece"
TOKENIZER_KINDS = (CLIP_BPE, WORDPIECE)
# Input and output names of the two graphs.
IMAGE_INPUT = "pixels"
TEXT_INPUT = "tokens"
OUTPUT = "embeddings"

_REQUIRED = {
    "format": str,
    "model": str,
    "embed_dim": int,
    "normalized": bool,
    "image": dict,
    "text": dict,
    "files": dict,
}
_IMAGE = ("size", "mean", "std", "interpolation", "resize_mode")
_TEXT = ("context_length", "tokenizer", "vocab")


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """``model.json`` of an exported model folder, after checking that every file it needs is there."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not folder.is_dir():
        raise UserInputError(f"--model {folder}: no such folder (write one with corpusforge export)")
    if not path.is_file():
        raise UserInputError(f"{path}: missing; {folder} is not a complete corpusforge export")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserInputError(f"{path}: not readable JSON ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise UserInputError(f"{path}: not a {FORMAT} manifest")
    for key, kind in _REQUIRED.items():
        if not isinstance(manifest.get(key), kind):
            raise UserInputError(f"{path}: field {key!r} missing or not a {kind.__name__}")
    for section, keys in (("image", _IMAGE), ("text", _TEXT)):
        missing = [k for k in keys if k not in manifest[section]]
        if missing:
            raise UserInputError(f"{path}: {section} lacks {', '.join(missing)}")
    if tokenizer_kind(manifest) not in TOKENIZER_KINDS:
        raise UserInputError(
            f"{path}: text.kind {tokenizer_kind(manifest)!r} is not one of {', '.join(TOKENIZER_KINDS)}"
        )
    for role, name in manifest["files"].items():
        if not (folder / name).is_file():
            raise UserInputError(f"{folder / name}: missing ({role}); {folder} is not a complete export")
    return manifest


def tokenizer_kind(manifest: dict[str, Any]) -> str:
    """The text tokenizer's kind; ``clip-bpe`` for a manifest written before the field existed."""
    return str(manifest["text"].get("kind", CLIP_BPE))
