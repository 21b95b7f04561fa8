"""Applying probes to one score shard: ``scores/probes/NNNNN.parquet`` and its marker.

The probes' scores are a unit of their own, committed right after the score shard they read (in
the same Spark task), with a fingerprint of that score shard's token and the probe files' digests:

- scoring with ``--probe``: the probes read the image embeddings just computed (rounded to float16,
  as ``--save-embeddings`` stores them, so both paths give the same bits);
- a dataset already scored: the score shards resume, and the probes read the stored embeddings
  (``scores/embeddings/NNNNN_image.npy``), or, where none were saved, the images are encoded
  again (the model is loaded anyway);
- the set of probes is the one given to this run: another set rewrites the unit (pass every probe
  each time).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
import pyarrow as pa

from pipeline.dataset import Dataset
from pipeline.errors import UserInputError
from pipeline.probe.model import Probe, check_embedding_model, load_probe
from pipeline.runner import ShardCommit, completed, fingerprint, run_shard
from schemas.probes import PROBES_SCHEMA, PROBES_VERSION

log = logging.getLogger(__name__)


@lru_cache(maxsize=64)
def _probe_file(path: str) -> tuple[Probe, str]:
    """A probe and the sha256 of its file (read once per process)."""
    from pipeline.remote import fresh_fs

    probe = load_probe(path)
    fs, local = fresh_fs(path)
    with fs.open(local, "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()
    return probe, digest


def load_probes(paths: tuple[str, ...], model: str, pretrained: str, dim: int | None = None) -> list[Probe]:
    """The probes of ``--probe`` files, checked: unique names, the embedding model scored with."""
    probes = [_probe_file(path)[0] for path in paths]
    names = [p.info.name for p in probes]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise UserInputError(f"--probe: two probe files are named {repeated}: probe names must be unique")
    for path, probe in zip(paths, probes, strict=True):
        check_embedding_model(probe, model, pretrained, f"the embeddings of --model/--pretrained ({path})")
        if dim is not None and probe.info.dim != dim:
            raise UserInputError(
                f"--probe {path}: probe {probe.info.name!r} reads {probe.info.dim}-d embeddings, "
                f"{model} makes {dim}-d ones"
            )
    return probes


def probes_fingerprint(paths: tuple[str, ...], score_token: str) -> str:
    """What a shard's probe scores depend on: the score shard's content and each probe file."""
    return fingerprint(
        score=score_token,
        probes=[_probe_file(path)[1] for path in paths],
        schema=PROBES_VERSION,
    )


def completed_probes(dataset: Dataset, shard: int, paths: tuple[str, ...]) -> dict[str, Any] | None:
    """The probes' marker of a score shard done with these probes from its present scores, else None."""
    scores = dataset.scores.shard(shard)
    if not scores.is_complete():
        return None
    return completed(dataset.storage, scores.probes_output, probes_fingerprint(paths, scores.token()))


def run_probes(
    dataset: Dataset,
    shard: int,
    paths: tuple[str, ...],
    model: str,
    pretrained: str,
    embeddings: Callable[[], np.ndarray],
) -> dict[str, Any]:
    """Write (or resume) the probe scores of a complete score shard; returns the probes' marker.

    ``embeddings()`` gives the shard's image embeddings in the scores table's row order.
    """
    scores = dataset.scores.shard(shard)
    probes = load_probes(paths, model, pretrained)

    def work(commit: ShardCommit) -> dict[str, Any]:
        uids = scores.table(["uid"]).column("uid").to_pylist()
        matrix = embeddings() if uids else np.zeros((0, probes[0].info.dim), np.float16)
        if matrix.shape[0] != len(uids):
            raise RuntimeError(
                f"{scores.name}: {matrix.shape[0]} image embeddings for {len(uids)} scored samples"
            )
        names, values, stats = [], [], {}
        for path, probe in zip(paths, probes, strict=True):
            predicted = probe.predict(matrix.astype(np.float16)) if uids else np.zeros(0, np.float32)
            names.append(probe.info.name)
            values.append(predicted)
            threshold = probe.info.validation.get("suggested_threshold")
            stats[probe.info.name] = {
                "sha256": _probe_file(path)[1],
                "sum": float(predicted.astype(np.float64).sum()),
                "above_suggested_threshold": int((predicted >= threshold).sum())
                if threshold is not None
                else None,
            }
        table = pa.table(
            {
                "uid": [u for _ in names for u in uids],
                "probe": [n for n in names for _ in uids],
                "score": np.concatenate(values).astype(np.float32) if values else np.zeros(0, np.float32),
            },
            schema=PROBES_SCHEMA,
        )
        commit.write_parquet(table, *scores.probes_file.parts)
        return {"shard": scores.name, "rows": len(uids), "score_token": scores.token(), "probes": stats}

    return run_shard(dataset.storage, scores.probes_output, probes_fingerprint(paths, scores.token()), work)
