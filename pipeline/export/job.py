"""``corpusforge export``: load, export both encoders, verify, then write ``model.json`` last.

``model.json`` is written only after the check passed, so a folder with one is a complete,
verified export (the server refuses a folder without it). A failed check leaves the ONNX files
for inspection and raises :class:`pipeline.export.verify.VerificationError`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pipeline.errors import UserInputError
from pipeline.export.graphs import export_encoders
from pipeline.export.manifest import (
    FORMAT,
    IMAGE_ENCODER,
    IMAGE_INPUT,
    MANIFEST,
    OUTPUT,
    TEXT_ENCODER,
    TEXT_INPUT,
)
from pipeline.export.options import ExportOptions
from pipeline.export.source import load_source
from pipeline.export.tokenizer import text_section, write_tokenizer
from pipeline.export.verify import verify
from pipeline.serve.preprocess import Preprocess

log = logging.getLogger(__name__)


def describe(loaded: Any) -> dict[str, Any]:
    """model.json's ``image`` and ``text`` sections; ``UserInputError`` for what the server cannot do."""
    import open_clip

    cfg = open_clip.get_model_preprocess_cfg(loaded.model)
    size = cfg["size"]
    if isinstance(size, list | tuple):
        if len(set(size)) != 1:
            raise UserInputError(
                f"{loaded.name}: non-square image size {size} is not supported by the export"
            )
        size = size[0]
    image = {
        "size": int(size),
        "mean": [float(v) for v in cfg["mean"]],
        "std": [float(v) for v in cfg["std"]],
        "interpolation": cfg.get("interpolation") or "bicubic",
        "resize_mode": cfg.get("resize_mode") or "shortest",
        "channels": "RGB",
    }
    reason = Preprocess.from_manifest(image).supported()
    if reason:
        raise UserInputError(f"{loaded.name}: its preprocessing uses {reason}")
    text = text_section(loaded.name, loaded.tokenizer)
    return {"image": image, "text": text}


def run_export(options: ExportOptions) -> dict[str, Any]:
    """Export, verify, write model.json; returns model.json's contents."""
    loaded, local, sha256 = load_source(options.checkpoint, options.model)
    sections = describe(loaded)
    out = options.output
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)  # an earlier export's manifest would vouch for new files
    text = sections["text"]
    files = {"image_encoder": IMAGE_ENCODER, "text_encoder": TEXT_ENCODER, "vocab": text["vocab"]}
    write_tokenizer(loaded.tokenizer, text, out)
    seconds = export_encoders(
        loaded.model,
        sections["image"]["size"],
        (text["context_length"], text["start_id"], text["end_id"]),
        out / IMAGE_ENCODER,
        out / TEXT_ENCODER,
        options.exporter,
        options.opset,
    )
    for role, name in (("image_encoder_data", IMAGE_ENCODER), ("text_encoder_data", TEXT_ENCODER)):
        if (out / f"{name}.data").exists():
            files[role] = f"{name}.data"
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "model": loaded.name,
        "embed_dim": _embed_dim(loaded.model, text["context_length"]),
        "normalized": True,
        **sections,
        "inputs": {"image": IMAGE_INPUT, "text": TEXT_INPUT, "output": OUTPUT},
        "files": files,
        "opset": options.opset,
        "exporter": options.exporter,
        "export_seconds": seconds,
        "checkpoint": {"path": options.checkpoint, "sha256": sha256},
    }
    manifest["verification"] = verify(loaded, out, files, manifest, options.verify_batches, options.tolerance)
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    log.info("wrote %s (checked against torch at batch sizes %s)", out / MANIFEST, options.verify_batches)
    return manifest


def _embed_dim(model: Any, context_length: int) -> int:
    import torch

    with torch.no_grad():
        return int(model.encode_text(torch.zeros(1, context_length, dtype=torch.long)).shape[1])


def format_result(manifest: dict[str, Any], output: Path) -> str:
    """The command's final line."""
    worst = max(v for diffs in manifest["verification"]["max_abs_diff"].values() for v in diffs.values())
    return (
        f"exported {manifest['model']} ({manifest['embed_dim']}-d, normalised embeddings) to {output}: "
        f"{IMAGE_ENCODER}, {TEXT_ENCODER}, {MANIFEST}; onnxruntime matches torch to {worst:.2g} "
        f"(tolerance {manifest['verification']['tolerance']:g})"
    )
