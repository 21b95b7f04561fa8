"""Scoring one raw shard: the unit of work of a Spark task.

Images are decoded and preprocessed (the model's own transforms) on a thread pool while the
model runs on the previous batch, so data loading hides behind the forward pass. The model is
loaded once per process and reused by every task that process runs.
"""

from __future__ import annotations

import hashlib
import io
import logging
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from pipeline.dataset import Dataset
from pipeline.score.distribution import histogram
from pipeline.score.model import LoadedModel, load_model
from pipeline.score.options import ScoreOptions
from pipeline.shards.raw_reader import iter_raw_images
from pipeline.shards.raw_writer import RAW_DIR
from schemas.raw_shard import STATUS_SUCCESS
from schemas.scores import SCORES_SCHEMA

log = logging.getLogger(__name__)

SCORES_DIR = "scores"
EMBEDDINGS_DIR = "embeddings"


def scores_stats_name(dataset: Dataset, shard: int) -> str:
    return f"{dataset.shard_name(shard)}_stats.json"


def raw_token(dataset: Dataset, shard: int) -> str:
    """Identity of a raw shard's content: the hash of its stats marker (rewritten on every redo)."""
    with dataset.fs.open(dataset.path(RAW_DIR, f"{dataset.shard_name(shard)}_stats.json"), "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()[:16]


def scored_stats(dataset: Dataset, shard: int) -> dict[str, Any] | None:
    """Stats of a scored shard, or None when unscored or scored from an older raw shard."""
    if not dataset.exists(SCORES_DIR, scores_stats_name(dataset, shard)):
        return None
    stats = dataset.read_json(SCORES_DIR, scores_stats_name(dataset, shard))
    return stats if stats.get("raw_token") == raw_token(dataset, shard) else None


def score_shard(shard: int, options: ScoreOptions, device: str | None = None) -> dict[str, Any]:
    """Score the successes of raw shard ``shard`` unless already done; return its stats."""
    dataset = Dataset(options.dataset)
    done = scored_stats(dataset, shard)
    if done is not None:
        return {**done, "resumed": True}
    started = time.time()
    token = raw_token(dataset, shard)
    loaded = load_model(options.model, options.pretrained, device or options.device)
    uids, image_emb, text_emb = _embed(_successes(dataset, shard), loaded, options)
    scores = (image_emb * text_emb).sum(axis=1) if uids else np.zeros(0, dtype=np.float32)
    name = dataset.shard_name(shard)
    table = pa.table(
        {
            "uid": uids,
            "clip_score": scores.astype(np.float32),
            "model": [options.model] * len(uids),
            "pretrained": [options.pretrained] * len(uids),
        },
        schema=SCORES_SCHEMA,
    )
    dataset.makedirs(SCORES_DIR)
    if options.save_embeddings:
        dataset.makedirs(SCORES_DIR, EMBEDDINGS_DIR)
        for kind, values in (("image", image_emb), ("text", text_emb)):
            _write_atomic(
                dataset,
                dataset.path(SCORES_DIR, EMBEDDINGS_DIR, f"{name}_{kind}.npy"),
                _npy_bytes(values.astype(np.float16)),
            )
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    _write_atomic(dataset, dataset.path(SCORES_DIR, f"{name}.parquet"), buffer.getvalue())
    seconds = time.time() - started
    stats = {
        "shard": name,
        "scored": len(uids),
        "seconds": round(seconds, 3),
        "model": options.model,
        "pretrained": options.pretrained,
        "device": loaded.device,
        "raw_token": token,
        "histogram": histogram(scores),
    }
    dataset.write_json_atomic(stats, SCORES_DIR, scores_stats_name(dataset, shard))
    return {**stats, "resumed": False}


def _successes(dataset: Dataset, shard: int) -> Iterator[tuple[str, bytes, str]]:
    """(uid, image bytes, caption) of every success of a raw shard, in tar order."""
    name = dataset.shard_name(shard)
    with dataset.fs.open(dataset.path(RAW_DIR, f"{name}.parquet"), "rb") as handle:
        rows = pq.read_table(handle, columns=["uid", "caption", "status"]).to_pylist()
    captions = {r["uid"]: r["caption"] or "" for r in rows if r["status"] == STATUS_SUCCESS}
    for key, data in iter_raw_images(dataset, shard, ("jpg", "webp")):
        if key in captions:
            yield key, data, captions[key]


def _batches(samples: Iterator[tuple[str, bytes, str]], size: int) -> Iterator[list[tuple[str, bytes, str]]]:
    while batch := list(islice(samples, size)):
        yield batch


def _embed(
    samples: Iterator[tuple[str, bytes, str]], loaded: LoadedModel, options: ScoreOptions
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """uids and normalised image and text embeddings of all samples, batch by batch.

    The shard is read as a stream: only the batch being embedded and the next one, being
    decoded on the loader threads, are in memory.
    """
    import torch

    uids: list[str] = []
    images_out: list[np.ndarray] = []
    texts_out: list[np.ndarray] = []
    batches = _batches(samples, options.batch_size)
    with ThreadPoolExecutor(options.loader_threads, thread_name_prefix="preprocess") as pool:
        batch = next(batches, None)
        pending = _submit(pool, batch, loaded)
        while batch is not None:
            pixels = torch.stack([future.result() for future in pending])
            following = next(batches, None)
            pending = _submit(pool, following, loaded)  # the next batch decodes meanwhile
            tokens = loaded.tokenizer([caption for _, _, caption in batch])
            with torch.inference_mode(), torch.autocast("cuda", enabled=loaded.device.startswith("cuda")):
                image = loaded.model.encode_image(pixels.to(loaded.device), normalize=True)
                text = loaded.model.encode_text(tokens.to(loaded.device), normalize=True)
            uids.extend(uid for uid, _, _ in batch)
            images_out.append(image.float().cpu().numpy())
            texts_out.append(text.float().cpu().numpy())
            batch = following
    if not images_out:
        return uids, np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32)
    return uids, np.concatenate(images_out), np.concatenate(texts_out)


def _submit(pool: ThreadPoolExecutor, batch: list | None, loaded: LoadedModel) -> list[Future]:
    if batch is None:
        return []
    return [pool.submit(_preprocess, data, loaded) for _, data, _ in batch]


def _preprocess(data: bytes, loaded: LoadedModel) -> Any:
    with Image.open(io.BytesIO(data)) as image:
        return loaded.preprocess(image.convert("RGB"))


def _npy_bytes(values: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, values)
    return buffer.getvalue()


def _write_atomic(dataset: Dataset, final: str, data: bytes) -> None:
    temp = dataset.temp_path(final)
    with dataset.fs.open(temp, "wb") as handle:
        handle.write(data)
    dataset.fs.mv(temp, final)
