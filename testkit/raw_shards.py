"""A downloaded-and-scored dataset made without a download: raw shards and scores written directly.

For tests and benchmarks of the later stages (build_shards) at sizes where a real download and
a real scoring pass would take too long. Raw shards go through the real ``RawShardWriter`` (same
tar layout, parquet and stats marker as the download job); score files follow the score job's
outputs (``SCORES_SCHEMA`` parquet, then a stats marker naming the raw shard it scored).
"""

from __future__ import annotations

import io
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image
from tqdm import tqdm

from pipeline.captions.language import shared_identifier
from pipeline.captions.repair import repair_caption
from pipeline.dataset import Dataset
from pipeline.runner import ShardCommit, run_shard
from pipeline.score.distribution import histogram
from pipeline.shards.raw_writer import RawShardWriter, SampleRecord, raw_row
from pipeline.uid import make_uid
from schemas.raw_shard import STATUS_FAILED, STATUS_SUCCESS
from schemas.scores import SCORES_SCHEMA

WORDS = ("red", "blue", "circle", "square", "small", "large", "striped", "dotted", "on", "a", "the")
FAKE_MODEL = "fabricated"


def fabricate_dataset(
    root: str | Path,
    shards: int,
    samples_per_shard: int,
    seed: int = 0,
    image_side: int = 32,
    failure_rate: float = 0.1,
    scored: bool = True,
) -> Dataset:
    """Write ``shards`` raw shards (and their scores) of ``samples_per_shard`` rows each under ``root``.

    About ``failure_rate`` of the rows are failures (in the parquet, not the tar). Successes get a
    noise JPEG of ``image_side`` px, a caption of 0-12 words and a made-up original size (some tiny,
    some very elongated), so every selection rule has something to drop.
    """
    dataset = Dataset(str(root))
    rng = random.Random(seed)
    for shard in tqdm(range(shards), desc="fabricating raw shards", unit=" shard"):
        uids: list[str] = []
        values: list[float] = []
        captions: list[str] = []

        def write(commit: ShardCommit) -> dict:
            writer = RawShardWriter(commit, dataset.raw.shard(shard), "jpg")  # noqa: B023 - called at once
            _fill(writer, rng, shard, samples_per_shard, image_side, failure_rate, uids, values, captions)  # noqa: B023
            return writer.finish()

        run_shard(dataset.storage, dataset.raw.shard(shard).output, f"fabricated:{seed}:{shard}", write)
        if scored:
            write_scores(dataset, shard, uids, np.asarray(values, dtype=np.float32), captions)
    return dataset


def _fill(
    writer: RawShardWriter,
    rng: random.Random,
    shard: int,
    samples_per_shard: int,
    image_side: int,
    failure_rate: float,
    uids: list[str],
    values: list[float],
    captions: list[str],
) -> None:
    for i in range(samples_per_shard):
        row_index = shard * samples_per_shard + i
        caption = " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 12)))
        url = f"http://example.invalid/{row_index}.jpg"
        row = _row(make_uid(url, caption), row_index, url, caption)
        if rng.random() < failure_rate:
            writer.add(SampleRecord({**row, "status": STATUS_FAILED, "error_class": "http_error"}))
            continue
        width, height = rng.choice((rng.randint(8, 64), rng.randint(200, 900))), rng.randint(200, 900)
        if rng.random() < 0.05:
            width = height * 5
        image = _noise_jpeg(rng, image_side)
        writer.add(
            SampleRecord(
                {
                    **row,
                    "status": STATUS_SUCCESS,
                    "original_width": width,
                    "original_height": height,
                    "width": image_side,
                    "height": image_side,
                    "original_bytes": len(image),
                    "stored_bytes": len(image),
                },
                image,
            )
        )
        uids.append(row["uid"])
        values.append(rng.uniform(-0.1, 0.45))
        captions.append(caption)


def _row(uid: str, row_index: int, url: str, caption: str) -> dict:
    return raw_row(uid=uid, row_index=row_index, url=url, caption=caption, http_status=200, final_url=url)


def _noise_jpeg(rng: random.Random, side: int) -> bytes:
    pixels = np.frombuffer(rng.randbytes(side * side * 3), dtype=np.uint8).reshape(side, side, 3)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def write_scores(
    dataset: Dataset, shard: int, uids: list[str], scores: np.ndarray, captions: list[str]
) -> None:
    """Scores as the score job commits them: parquet, then a marker naming the raw shard's token.

    Language and repair columns are computed as the score job does (``pipeline.captions``).
    """
    identifier = shared_identifier()
    repaired = [repair_caption(caption) for caption in captions]
    found = [identifier.identify(text) for text, _ in repaired]
    table = pa.table(
        {
            "uid": uids,
            "clip_score": scores,
            "model": [FAKE_MODEL] * len(uids),
            "pretrained": [FAKE_MODEL] * len(uids),
            "language": [language for language, _ in found],
            "language_confidence": np.asarray([confidence for _, confidence in found], dtype=np.float32),
            "caption_repaired": [changed for _, changed in repaired],
        },
        schema=SCORES_SCHEMA,
    )
    unit = dataset.scores.shard(shard)
    token = dataset.raw.shard(shard).token()

    def write(commit: ShardCommit) -> dict:
        commit.write_parquet(table, *unit.table_file.parts)
        return {
            "shard": unit.name,
            "scored": len(uids),
            "model": FAKE_MODEL,
            "pretrained": FAKE_MODEL,
            "raw_token": token,
            "histogram": histogram(scores),
            "languages": dict(Counter(language for language, _ in found).most_common()),
            "repaired": sum(changed for _, changed in repaired),
        }

    run_shard(dataset.storage, unit.output(False), f"fabricated:{token}", write)


def write_raw_shard(
    dataset: Dataset, index: int, records: list[SampleRecord], ext: str = "jpg", inputs: str | None = None
) -> dict:
    """Commit raw shard ``index`` of ``records`` as the download job does (a new commit each call
    unless ``inputs`` names the same fingerprint as the one committed)."""
    import uuid

    shard = dataset.raw.shard(index)

    def work(commit: ShardCommit) -> dict:
        writer = RawShardWriter(commit, shard, ext)
        for record in records:
            writer.add(record)
        return writer.finish()

    return run_shard(dataset.storage, shard.output, inputs or uuid.uuid4().hex, work)


def write_captioned_shard(
    dataset: Dataset, index: int, captions: list[str], seed: int = 0, scored: bool = True
) -> list[str]:
    """Raw shard ``index`` with one success per caption (a 400x300 noise JPEG each, URLs made
    unique by position) and, when ``scored``, its scores as the score job writes them (language
    and repair columns included); returns the uids in caption order. For the caption-rule tests."""
    rng = random.Random(seed)
    records, uids = [], []
    for i, caption in enumerate(captions):
        url = f"http://example.invalid/{index}/{i}.jpg"
        row = _row(make_uid(url, caption), index * 100_000 + i, url, caption)
        image = _noise_jpeg(rng, 16)
        sizes = {"original_width": 400, "original_height": 300, "width": 16, "height": 16}
        sizes |= {"original_bytes": len(image), "stored_bytes": len(image)}
        records.append(SampleRecord({**row, "status": STATUS_SUCCESS, **sizes}, image))
        uids.append(row["uid"])
    write_raw_shard(dataset, index, records, inputs=f"captioned:{seed}:{index}")
    if scored:
        values = np.asarray([rng.uniform(0.1, 0.4) for _ in uids], dtype=np.float32)
        write_scores(dataset, index, uids, values, captions)
    return uids
