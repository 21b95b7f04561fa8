"""A probe: a small linear or MLP head on CLIP image embeddings, its file and its forward pass.

The file is safetensors: the weights as float32 tensors and the description as the header's
string metadata (one JSON document under ``corpusforge.probe``). Reading it never unpickles
anything, and applying it needs numpy only (no torch), so a probe can be applied wherever the
embeddings are.

A probe remembers the embedding model it was trained on (``model``, ``pretrained`` as the score
job recorded them) and refuses any other: the same dimension does not mean the same space.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from pipeline.errors import UserInputError

FORMAT = "corpusforge-probe"
FORMAT_VERSION = 1
META_KEY = "corpusforge.probe"
KINDS = ("linear", "mlp")
TARGETS = ("binary", "regression")


@dataclass(frozen=True)
class ProbeInfo:
    """What a probe is: its name, shape, the embedding space it reads and how it validated."""

    name: str
    kind: str  # linear | mlp
    target: str  # binary (output: probability of label 1) | regression (output: predicted value)
    model: str  # the score job's --model the embeddings came from
    pretrained: str  # and its --pretrained
    dim: int
    hidden: int = 0  # MLP hidden width (0 for linear)
    # Standardisation of a regression target: prediction = raw * target_scale + target_mean.
    target_mean: float = 0.0
    target_scale: float = 1.0
    validation: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION


@dataclass(frozen=True)
class Probe:
    """A probe's description and weights (``w1``, ``b1`` and, for an MLP, ``w2``, ``b2``)."""

    info: ProbeInfo
    weights: dict[str, np.ndarray]

    def predict(self, embeddings: np.ndarray) -> np.ndarray:
        """Scores of ``embeddings`` (N x dim, any float dtype) as float32: probabilities or values."""
        x = np.asarray(embeddings, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.info.dim:
            raise ValueError(f"probe {self.info.name!r} reads {self.info.dim}-d embeddings, got {x.shape}")
        w = self.weights
        hidden = x @ w["w1"].T + w["b1"]
        if self.info.kind == "mlp":
            hidden = np.maximum(hidden, 0.0) @ w["w2"].T + w["b2"]
        raw = hidden[:, 0].astype(np.float64)
        if self.info.target == "binary":
            return (1.0 / (1.0 + np.exp(-np.clip(raw, -60, 60)))).astype(np.float32)
        return (raw * self.info.target_scale + self.info.target_mean).astype(np.float32)


def save_probe(probe: Probe, path: str) -> None:
    """Write ``probe`` as safetensors (weights) with its description in the header (atomic locally)."""
    from safetensors.numpy import save

    from pipeline.remote import write_bytes

    tensors = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in probe.weights.items()}
    data = save(tensors, metadata={META_KEY: json.dumps(asdict(probe.info), sort_keys=True)})
    write_bytes(data, path)


def load_probe(path: str, flag: str = "--probe") -> Probe:
    """Read a probe file (safetensors, no pickle); ``UserInputError`` naming ``path`` if it is not one."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    from pipeline.remote import exists, fresh_fs

    if not exists(path, flag):
        raise UserInputError(f"{flag} {path}: no such probe file")
    fs, local = fresh_fs(path)
    with fs.open(local, "rb") as handle:
        data = handle.read()
    try:
        tensors = load(data)
        meta = _header_metadata(data)
    except (SafetensorError, ValueError, json.JSONDecodeError) as exc:
        raise UserInputError(f"{flag} {path}: not a probe file (safetensors): {exc}") from exc
    if META_KEY not in meta:
        raise UserInputError(f"{flag} {path}: a safetensors file without a probe description ({META_KEY})")
    try:
        info = ProbeInfo(**json.loads(meta[META_KEY]))
    except (TypeError, json.JSONDecodeError) as exc:
        raise UserInputError(f"{flag} {path}: unreadable probe description: {exc}") from exc
    if info.format != FORMAT or info.format_version > FORMAT_VERSION:
        raise UserInputError(
            f"{flag} {path}: probe format {info.format} v{info.format_version}; this version reads "
            f"{FORMAT} v{FORMAT_VERSION} or older"
        )
    if info.kind not in KINDS or info.target not in TARGETS:
        raise UserInputError(f"{flag} {path}: unknown probe kind {info.kind!r} or target {info.target!r}")
    wanted = {"w1", "b1"} | ({"w2", "b2"} if info.kind == "mlp" else set())
    if set(tensors) != wanted or tensors["w1"].shape[1] != info.dim:
        raise UserInputError(
            f"{flag} {path}: weights {sorted(tensors)} of shape {tensors.get('w1', np.zeros(0)).shape} do "
            f"not fit a {info.kind} probe on {info.dim}-d embeddings"
        )
    return Probe(info, tensors)


def _header_metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors header (8-byte little-endian length, then JSON)."""
    if len(data) < 8:
        raise ValueError("file too short")
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    return header.get("__metadata__", {}) or {}


def check_embedding_model(probe: Probe, model: str, pretrained: str, where: str) -> None:
    """Refuse embeddings of another model than the probe's (``where`` names them in the message)."""
    info = probe.info
    if (info.model, info.pretrained) != (model, pretrained):
        raise UserInputError(
            f"probe {info.name!r} was trained on embeddings of {info.model} ({info.pretrained}) but {where} "
            f"are of {model} ({pretrained}): train the probe again on embeddings of that model"
        )
