"""Scoring one raw shard: the unit of work of a Spark task.

Images are decoded and preprocessed (the model's own transforms) on a thread pool while the
model runs on the previous batch, so data loading hides behind the forward pass. The model is
loaded once per process and reused by every task that process runs.
"""

from __future__ import annotations

import io
import logging
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import Any

import numpy as np
import pyarrow as pa
from PIL import Image

from pipeline.captions.language import MODEL_NAME as LANGUAGE_MODEL
from pipeline.captions.language import shared_identifier
from pipeline.captions.repair import REPAIR_VERSION, repair_caption
from pipeline.dataset import Dataset
from pipeline.probe.shard import completed_probes, run_probes
from pipeline.runner import ShardCommit, completed, fingerprint, run_shard
from pipeline.score.distribution import histogram
from pipeline.score.model import LoadedModel, load_model
from pipeline.score.options import ScoreOptions
from pipeline.stage import Resources, ShardStep
from schemas.scores import SCORES_SCHEMA, SCORES_VERSION

log = logging.getLogger(__name__)


def current_scores(dataset: Dataset, shard: int) -> dict[str, Any] | None:
    """The marker of scores made from raw shard ``shard`` as it is now, else None.

    A raw shard redone since it was scored (download --overwrite, a lost shard) has another
    token, so its old scores are not current.
    """
    scores = dataset.scores.shard(shard)
    if not scores.is_complete():
        return None
    stats = scores.stats()
    return stats if stats.get("raw_token") == dataset.raw.shard(shard).token() else None


@dataclass(frozen=True)
class ScoreShard(ShardStep[int, LoadedModel]):
    """Score the successes of one raw shard; the model is loaded once per worker process."""

    options: ScoreOptions

    name = "corpusforge-score"
    description = "scoring shards"
    counters = ("scored",)

    def resources(self) -> Resources:
        return Resources(cpus=self.options.task_cpus, gpus=self.options.task_gpus)

    def _inputs(self, raw_token: str) -> str:
        o = self.options
        return fingerprint(
            raw=raw_token,
            model=o.model,
            pretrained=o.pretrained,
            embeddings=o.save_embeddings,
            schema=SCORES_VERSION,
            captions=f"{LANGUAGE_MODEL}/repair-{REPAIR_VERSION}",
        )

    def completed(self, task: int) -> dict[str, Any] | None:
        dataset = Dataset(self.options.dataset)
        done = completed(
            dataset.storage,
            dataset.scores.shard(task).output(self.options.save_embeddings),
            self._inputs(dataset.raw.shard(task).token()),
        )
        if done is not None and self.options.probes:
            probes = completed_probes(dataset, task, self.options.probes)
            return None if probes is None else {**done, "probes": probes["probes"]}
        return done

    def setup_key(self) -> tuple[str, str, str]:
        return (self.options.model, self.options.pretrained, _task_device(self.options.device))

    def setup(self) -> LoadedModel:
        _use_task_cores(self.options.task_cpus)
        shared_identifier()  # the language identifier, loaded once per worker like the model
        return load_model(self.options.model, self.options.pretrained, _task_device(self.options.device))

    def teardown(self, state: LoadedModel) -> None:
        if state.device.startswith("cuda"):
            import torch

            del state.model
            torch.cuda.empty_cache()

    def process(self, task: int, state: LoadedModel) -> dict[str, Any]:
        dataset = Dataset(self.options.dataset)
        raw = dataset.raw.shard(task)
        scores = dataset.scores.shard(task)
        options = self.options
        token = raw.token()
        computed: dict[str, np.ndarray] = {}

        def work(commit: ShardCommit) -> dict[str, Any]:
            captions = CaptionInfo()
            uids, image_emb, text_emb = _embed(captions.read(_successes(dataset, task)), state, options)
            computed["image"] = image_emb
            values = (image_emb * text_emb).sum(axis=1) if uids else np.zeros(0, dtype=np.float32)
            table = pa.table(
                {
                    "uid": uids,
                    "clip_score": values.astype(np.float32),
                    "model": [options.model] * len(uids),
                    "pretrained": [options.pretrained] * len(uids),
                    "language": captions.languages,
                    "language_confidence": np.asarray(captions.confidences, dtype=np.float32),
                    "caption_repaired": captions.repaired,
                },
                schema=SCORES_SCHEMA,
            )
            if options.save_embeddings:
                for kind, embedded in (("image", image_emb), ("text", text_emb)):
                    commit.write_bytes(_npy_bytes(embedded.astype(np.float16)), *scores.embeddings_file(kind))
            commit.write_parquet(table, *scores.table_file.parts)
            return {
                "shard": scores.name,
                "scored": len(uids),
                "model": options.model,
                "pretrained": options.pretrained,
                "device": state.device,
                "raw_token": token,
                "histogram": histogram(values),
                "languages": dict(Counter(captions.languages).most_common()),
                "repaired": sum(captions.repaired),
            }

        marker = run_shard(dataset.storage, scores.output(options.save_embeddings), self._inputs(token), work)
        if options.probes:
            marker["probes"] = self._probes(dataset, task, state, computed)["probes"]
        return marker

    def _probes(
        self, dataset: Dataset, task: int, state: LoadedModel, computed: dict[str, np.ndarray]
    ) -> dict[str, Any]:
        """The probes' unit of this shard (docs/score.md, "Probes"): embeddings just computed, else
        the stored ones, else the images encoded again."""
        scores = dataset.scores.shard(task)

        def image_embeddings() -> np.ndarray:
            if "image" in computed:
                return computed["image"]
            if scores.has_embeddings("image"):
                return scores.embeddings("image")
            uids, image_emb, _ = _embed(_successes(dataset, task), state, self.options)
            if uids != scores.table(["uid"]).column("uid").to_pylist():
                raise RuntimeError(f"{scores.name}: the samples changed since they were scored")
            return image_emb

        options = self.options
        return run_probes(dataset, task, options.probes, options.model, options.pretrained, image_embeddings)


class CaptionInfo:
    """Repairs captions as they stream to the model and records language and repair per sample."""

    def __init__(self) -> None:
        self.languages: list[str] = []
        self.confidences: list[float] = []
        self.repaired: list[bool] = []

    def read(self, samples: Iterator[tuple[str, bytes, str]]) -> Iterator[tuple[str, bytes, str]]:
        """The samples with their captions repaired (ftfy), in the same order."""
        identifier = shared_identifier()
        for uid, data, caption in samples:
            fixed, changed = repair_caption(caption)
            language, confidence = identifier.identify(fixed)
            self.languages.append(language)
            self.confidences.append(confidence)
            self.repaired.append(changed)
            yield uid, data, fixed


def _use_task_cores(cpus: int) -> None:
    """Inside a Spark task, let torch use the cores the task was given (``--task-cpus``).

    Spark sizes a Python worker's OMP_NUM_THREADS from ``spark.task.cpus``, not from the stage's
    resource profile, so a step asking for more cores must say so to torch itself.
    """
    try:
        from pyspark import TaskContext
    except ImportError:
        return
    if TaskContext.get() is None:
        return
    import torch

    if torch.get_num_threads() != cpus:
        torch.set_num_threads(cpus)


def _task_device(device: str) -> str:
    """With Spark GPU scheduling, use the GPU the task was given; otherwise ``device`` as asked."""
    if device != "auto":
        return device
    try:
        from pyspark import TaskContext

        context = TaskContext.get()
        gpus = context.resources().get("gpu") if context is not None else None
        if gpus is not None and gpus.addresses:
            return f"cuda:{gpus.addresses[0]}"
    except ImportError:
        pass
    return device


def _successes(dataset: Dataset, shard: int) -> Iterator[tuple[str, bytes, str]]:
    """(uid, image bytes, caption) of every success of a raw shard, in tar order."""
    raw = dataset.raw.shard(shard)
    captions = {r["uid"]: r["caption"] or "" for r in raw.successes(["uid", "caption"])}
    for key, data in raw.images():
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
            real = len(batch)
            pixels = _padded(pixels, options.batch_size).to(loaded.device)
            tokens = _padded(tokens, options.batch_size).to(loaded.device)
            with torch.inference_mode(), torch.autocast("cuda", enabled=loaded.device.startswith("cuda")):
                image = loaded.model.encode_image(pixels, normalize=True)
                text = loaded.model.encode_text(tokens, normalize=True)
            uids.extend(uid for uid, _, _ in batch)
            images_out.append(image[:real].float().cpu().numpy())
            texts_out.append(text[:real].float().cpu().numpy())
            batch = following
    if not images_out:
        return uids, np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32)
    return uids, np.concatenate(images_out), np.concatenate(texts_out)


def _padded(batch: Any, size: int) -> Any:
    """``batch`` filled up to ``size`` rows with copies of its last row.

    Matrix kernels round differently for different batch shapes, and which samples land in a
    shard's short last batch depends on the order downloads finished in. With every forward
    pass the same shape, a pair's score is the same bits whatever the order (one extra
    partial batch of work per shard at most).
    """
    import torch

    missing = size - batch.shape[0]
    if missing <= 0:
        return batch
    return torch.cat([batch, batch[-1:].expand(missing, *batch.shape[1:])])


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
