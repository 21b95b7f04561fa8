"""Image embeddings in dedup: benchmark copies the hashes miss, found by the score job's embeddings.

A pHash changes completely under a mirror image or a crop of 15% and more; an image embedding
changes little. With ``--embeddings`` the dedup job:

1. takes the corpus side from the score job (``scores/embeddings/NNNNN_image.npy``, written with
   ``--save-embeddings``): every raw shard must have current scores with embeddings, all from one
   model (:func:`scored_model`);
2. embeds every benchmark image with that same model, after the same decode and resize as the
   corpus, as three queries framed as the corpus side is embedded (:func:`query_images`): the
   stored image, its mirror image and the stored image of its centre cropped by 15% of each
   side. The table is kept in ``dedup/benchmark_embeddings.parquet`` and reused while sources,
   image options and model are unchanged;
3. searches exactly (a matrix product, no approximate index): one Spark task per raw shard, the
   benchmark queries broadcast. A sample whose cosine similarity to some benchmark image's query
   reaches ``--embedding-min-similarity`` becomes a candidate, in both orientations (an
   embedding hardly tells a picture from its mirror; the thumbnails do);
4. measures the similarity of the hash candidates of the same shard too, as one more signal.

An embedding candidate is only a candidate: it goes through the same verification as the hash
candidates (:mod:`pipeline.dedup.checks`: the aligned colour thumbnails, mirrored for a mirror
match, with the central crops), so a picture of the same kind that is not a copy (which a CLIP
model places close by design) is not dropped.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from PIL import Image

from pipeline.dataset import Dataset
from pipeline.dedup.benchmark_hashes import HashTask, image_tasks, source_images, sources_fingerprint
from pipeline.dedup.benchmark_matches import Candidate
from pipeline.dedup.benchmark_sources import BenchmarkSource
from pipeline.dedup.checks import SIGNAL_EMBEDDING, SIGNAL_LAYOUT
from pipeline.dedup.corpus import shard_hashes
from pipeline.errors import SampleError, UserInputError
from pipeline.executor import SparkExecutor
from pipeline.image.decode import decode_rgb, open_checked
from pipeline.image.encode import encode
from pipeline.image.options import ImageOptions
from pipeline.image.phash import from_signed64
from pipeline.image.resize import resize
from pipeline.runner import ShardCommit, fingerprint, run_shard
from pipeline.stage import ShardStep
from schemas.contract import SchemaMismatch
from schemas.dedup import BENCHMARK_EMBEDDINGS_SCHEMA

log = logging.getLogger(__name__)

# The queries each benchmark image is searched with, in this order in its stored embeddings.
QUERY_PICTURE, QUERY_MIRROR, QUERY_CROP = "picture", "mirror", "crop_15"
QUERIES = (QUERY_PICTURE, QUERY_MIRROR, QUERY_CROP)
# The central crop query: this share of each side cut off (the largest central crop the
# verification thumbnails compare, pipeline.dedup.verify.ZOOMS).
CROP_ZOOM = 0.15
# Bump when the benchmark embedding changes, so saved tables are not reused.
# 2: queries framed as the corpus side (stored image, padding included); both orientations verified.
EMBEDDING_VERSION = 2
# Benchmark images embedded at once (their queries: 3 x this many pictures per forward pass).
EMBED_BATCH = 64
# Corpus rows multiplied with the benchmark queries at once (bounds a task's memory).
SEARCH_BLOCK = 1024
# At most this many benchmark images per sample become candidates (the most similar).
MAX_CANDIDATES_PER_SAMPLE = 5


@dataclass(frozen=True)
class ScoredModel:
    """The model the corpus' embeddings were made with."""

    model: str
    pretrained: str


def scored_model(dataset: Dataset, shards: list[int]) -> ScoredModel:
    """The one model all raw shards' current scores and embeddings come from.

    Raises ``UserInputError`` naming the shard when one has no current scores, no saved
    embeddings, or scores from another model.
    """
    from pipeline.score.shard_scorer import current_scores

    found: dict[tuple[str, str], int] = {}
    for shard in shards:
        scores = dataset.scores.shard(shard)
        stats = current_scores(dataset, shard)
        if stats is None:
            raise UserInputError(
                f"--embeddings: raw shard {shard:05d} has no current scores in {dataset.scores.display()}: "
                "run jobs/score.py --save-embeddings first"
            )
        if not scores.has_embeddings("image"):
            raise UserInputError(
                f"--embeddings: {dataset.display(*scores.embeddings_file('image'))} is missing: "
                "run jobs/score.py --save-embeddings (with --overwrite if the shards were scored without)"
            )
        found.setdefault((stats["model"], stats["pretrained"]), shard)
    if len(found) > 1:
        seen = ", ".join(f"{m} ({p}) in shard {s:05d}" for (m, p), s in sorted(found.items()))
        raise UserInputError(f"--embeddings: the scores come from several models: {seen}; rescore with one")
    if not found:
        raise UserInputError("--embeddings: no scored raw shards")
    (model, pretrained), _ = found.popitem()
    return ScoredModel(model, pretrained)


def shard_embeddings(dataset: Dataset, shard: int) -> tuple[list[str], np.ndarray]:
    """uids and L2-normalised image embeddings (float32) of a raw shard's scored samples."""
    scores = dataset.scores.shard(shard)
    uids = scores.table(["uid"]).column("uid").to_pylist()
    matrix = scores.embeddings("image")
    if matrix.shape[0] != len(uids):
        raise UserInputError(
            f"{dataset.display(*scores.embeddings_file('image'))}: {matrix.shape[0]} embeddings for "
            f"{len(uids)} scored samples; rescore the shard with --overwrite"
        )
    return uids, _normalised(matrix.astype(np.float32))


def _normalised(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


# -- the benchmark side --------------------------------------------------------------------------


def query_images(data: bytes, image: ImageOptions) -> list[Image.Image]:
    """The pictures a benchmark image is embedded as (:data:`QUERIES`), framed as the corpus side
    is: the image the download job would store of it (decoded from its stored bytes, border
    padding included, as the score job embeds a sample), its mirror, and the stored image of the
    file's centre with :data:`CROP_ZOOM` of each side cut off.

    Framing matters: a query cut to the picture would be centre-cropped square by the model's
    preprocessing, while a non-square corpus copy is seen whole inside its padding
    (docs/benchmarks.md, "Embedding signal").
    """
    rgb, original_size = decode_rgb(open_checked(data, image), image)
    stored = _as_stored(resize(rgb, original_size, image), image)
    width, height = rgb.size
    kept_w, kept_h = round(width * (1 - CROP_ZOOM)), round(height * (1 - CROP_ZOOM))
    left, top = (width - kept_w) // 2, (height - kept_h) // 2
    cropped = rgb.crop((left, top, left + kept_w, top + kept_h))
    cropped_size = (
        max(1, round(original_size[0] * (1 - CROP_ZOOM))),
        max(1, round(original_size[1] * (1 - CROP_ZOOM))),
    )
    crop = _as_stored(resize(cropped, cropped_size, image), image)
    return [stored, stored.transpose(Image.Transpose.FLIP_LEFT_RIGHT), crop]


def _as_stored(picture: Image.Image, image: ImageOptions) -> Image.Image:
    """``picture`` after the download's encode and a decode, as the score job reads a sample."""
    with Image.open(io.BytesIO(encode(picture, image))) as stored:
        return stored.convert("RGB")


@dataclass(frozen=True)
class EmbedBenchmarkImages(ShardStep[HashTask, Any]):
    """Embed the images of one benchmark task with the scored model (loaded once per worker)."""

    image: ImageOptions
    model: ScoredModel
    device: str

    name = "corpusforge-dedup-embed"
    description = "embedding benchmarks"

    def setup_key(self) -> tuple[str, str, str]:
        return (self.model.model, self.model.pretrained, self.device)

    def setup(self) -> Any:
        from pipeline.score.model import load_model

        return load_model(self.model.model, self.model.pretrained, self.device)

    def process(self, task: HashTask, state: Any) -> dict[str, Any]:
        return embed_images(task.source, task.files, self.image, state)


def embed_images(
    source: BenchmarkSource, files: tuple[str, ...], image: ImageOptions, loaded: Any
) -> dict[str, Any]:
    """Rows (benchmark_id, embeddings) of the images of ``files``, :data:`EMBED_BATCH` images at
    a time (a tar of many images is streamed); images the hashing refuses (undecodable) are
    skipped here, the hashing step reports or refuses them."""
    rows: list[dict[str, Any]] = []
    batch: list[tuple[str, list[Any]]] = []
    errors: list[str] = []
    for member, data in source_images(source, files, errors):
        try:
            queries = query_images(data, image)
        except SampleError:
            continue
        batch.append((f"{source.name}/{member}", [loaded.preprocess(q) for q in queries]))
        if len(batch) == EMBED_BATCH:
            rows.extend(_embedded_rows(batch, loaded))
            batch = []
    if batch:
        rows.extend(_embedded_rows(batch, loaded))
    return {"rows": rows}


def _embedded_rows(batch: list[tuple[str, list[Any]]], loaded: Any) -> list[dict[str, Any]]:
    import torch

    pixels = torch.stack([p for _, queries in batch for p in queries]).to(loaded.device)
    with torch.inference_mode():
        embedded = loaded.model.encode_image(pixels, normalize=True).float().cpu().numpy()
    size = len(QUERIES)
    return [
        {"benchmark_id": bid, "embeddings": embedded[i * size : (i + 1) * size].astype(np.float16).tobytes()}
        for i, (bid, _) in enumerate(batch)
    ]


@dataclass(frozen=True)
class BenchmarkEmbeddings:
    """The benchmark queries: ``matrix[i]`` is query ``QUERIES[i % 3]`` of benchmark row ``i // 3``
    (rows of the benchmark hash table); rows without an image (precomputed hashes) are zeros."""

    matrix: np.ndarray  # float16, (3 * rows, dim)
    embedded: int  # benchmark images with embeddings
    reused: bool

    @property
    def rows(self) -> int:
        return self.matrix.shape[0] // len(QUERIES)


def benchmark_embeddings(
    executor: SparkExecutor,
    dataset: Dataset,
    sources: list[BenchmarkSource],
    benchmark_ids: list[str],
    image: ImageOptions,
    model: ScoredModel,
    device: str,
) -> BenchmarkEmbeddings:
    """Every benchmark image's queries, embedded in Spark tasks, or reused from the saved table."""
    folder = dataset.dedup
    inputs = fingerprint(
        version=EMBEDDING_VERSION,
        schema=BENCHMARK_EMBEDDINGS_SCHEMA.metadata[b"corpusforge.schema_version"].decode(),
        sources=sources_fingerprint(sources, image),  # the image options included
        model=model.model,
        pretrained=model.pretrained,
    )

    def work(commit: ShardCommit) -> dict[str, Any]:
        results = executor.map(EmbedBenchmarkImages(image, model, device), image_tasks(sources))
        rows = sorted((row for r in results for row in r["rows"]), key=lambda r: r["benchmark_id"])
        commit.write_parquet(
            pa.Table.from_pylist(rows, schema=BENCHMARK_EMBEDDINGS_SCHEMA), *folder.benchmark_embeddings.parts
        )
        log.info("embedded %d benchmark images with %s (%s)", len(rows), model.model, model.pretrained)
        return {"benchmark_images": len(rows), "model": model.model, "pretrained": model.pretrained}

    marker = run_shard(dataset.storage, folder.benchmark_embeddings_output, inputs, work)
    try:
        table = folder.benchmark_embeddings.read()
    except SchemaMismatch as exc:
        raise UserInputError(f"{exc}; delete it to embed the benchmark images again") from exc
    return BenchmarkEmbeddings(_query_matrix(table, benchmark_ids), table.num_rows, bool(marker["resumed"]))


def _query_matrix(table: pa.Table, benchmark_ids: list[str]) -> np.ndarray:
    position = {bid: i for i, bid in enumerate(benchmark_ids)}
    embedded = table.column("embeddings").to_pylist()
    if not embedded:
        return np.zeros((len(QUERIES) * len(benchmark_ids), 0), dtype=np.float16)
    width = len(embedded[0]) // 2 // len(QUERIES)
    matrix = np.zeros((len(benchmark_ids), len(QUERIES), width), dtype=np.float16)
    for bid, data in zip(table.column("benchmark_id").to_pylist(), embedded, strict=True):
        if bid in position:
            matrix[position[bid]] = np.frombuffer(data, dtype=np.float16).reshape(len(QUERIES), width)
    return matrix.reshape(len(benchmark_ids) * len(QUERIES), width)


# -- the search ----------------------------------------------------------------------------------


VectorReader = Callable[[Dataset, int], tuple[list[str], np.ndarray]]


@dataclass(frozen=True)
class VectorSource:
    """What an exact vector search compares: the corpus side (``read``: uids and unit-length rows
    of a raw shard; a uid may have several rows, and a pair counts with its best), how many
    queries each benchmark row has, and the signal its candidates carry (``embedding``: the score
    job's image embeddings; ``layout``: :mod:`pipeline.dedup.layout`)."""

    signal: str
    read: VectorReader
    queries_per_row: int

    def candidate(
        self, uid: str, shard: int, row: int, distance: int, flipped: bool, value: float
    ) -> Candidate:
        """A candidate this source found, with its similarity in the source's own field."""
        if self.signal == SIGNAL_LAYOUT:
            return Candidate(uid, shard, row, distance, flipped, layout=True, layout_similarity=value)
        return Candidate(uid, shard, row, distance, flipped, similarity=value, embedding=True)


EMBEDDINGS = VectorSource(SIGNAL_EMBEDDING, shard_embeddings, len(QUERIES))


@dataclass(frozen=True)
class SearchTask:
    """One raw shard, and its earlier candidates' (uid, benchmark row) pairs to measure."""

    shard: int
    known: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class SearchVectors(ShardStep[SearchTask, None]):
    """Benchmark candidates of one raw shard by vector similarity (exact search)."""

    dataset: Dataset
    source: VectorSource
    queries: Any  # a Spark broadcast of the query matrix (float16 or float32)
    phashes: Any  # a Spark broadcast of (phash, phash_flipped) unsigned arrays of the benchmark rows
    min_similarity: float

    name = "corpusforge-dedup-vector-search"
    description = "searching vectors"
    counters = ("candidates",)

    def process(self, task: SearchTask, state: None) -> dict[str, Any]:
        found, measured = search_shard(
            self.dataset, task, self.queries.value, self.phashes.value, self.min_similarity, self.source
        )
        return {"found": found, "measured": sorted(measured.items()), "candidates": len(found)}


def search_shard(
    dataset: Dataset,
    task: SearchTask,
    queries: np.ndarray,
    phashes: tuple[np.ndarray, np.ndarray],
    min_similarity: float,
    source: VectorSource = EMBEDDINGS,
) -> tuple[list[Candidate], dict[tuple[str, int], float]]:
    """Candidates of one shard (similarity at least ``min_similarity`` to some query of a
    benchmark row), and the similarity of each known (uid, benchmark row) pair (the best of the
    row's queries, and of the uid's vectors when it has several)."""
    uids, vectors = source.read(dataset, task.shard)
    if not uids or queries.shape[1] == 0:
        return [], {}
    if vectors.shape[1] != queries.shape[1]:
        raise UserInputError(
            f"raw shard {task.shard:05d}: {source.signal} vectors of width {vectors.shape[1]}, benchmark "
            f"queries of width {queries.shape[1]}"
        )
    names, hashes = shard_hashes(dataset, task.shard)
    phash_of = dict(zip(names, hashes, strict=True))
    positions: dict[str, list[int]] = {}
    for i, u in enumerate(uids):
        positions.setdefault(u, []).append(i)
    known: dict[int, list[tuple[str, int]]] = {}
    for uid, row in task.known:
        for i in positions.get(uid, ()):
            known.setdefault(i, []).append((uid, row))
    plain, mirrored = phashes
    per_row = source.queries_per_row
    rows = queries.shape[0] // per_row
    matrix = queries.astype(np.float32)
    hit: dict[tuple[str, int], float] = {}  # (uid, row) -> the best similarity of the uid's rows
    measured: dict[tuple[str, int], float] = {}
    for start in range(0, len(uids), SEARCH_BLOCK):
        block = vectors[start : start + SEARCH_BLOCK] @ matrix.T  # (block, per_row * rows)
        best = block.reshape(len(block), rows, per_row).max(axis=2)
        for i in range(len(block)):
            sample = start + i
            for uid, row in known.get(sample, ()):
                measured[(uid, row)] = max(measured.get((uid, row), -1.0), float(best[i, row]))
            hits = np.flatnonzero(best[i] >= min_similarity)
            if len(hits) > MAX_CANDIDATES_PER_SAMPLE:
                hits = hits[np.argsort(-best[i, hits], kind="stable")[:MAX_CANDIDATES_PER_SAMPLE]]
            uid = uids[sample]
            if uid not in phash_of:
                continue
            for row in sorted(int(h) for h in hits):
                value = round(float(best[i, row]), 6)
                hit[(uid, row)] = max(hit.get((uid, row), value), value)
    found: list[Candidate] = []
    for (uid, row), value in hit.items():
        # Both orientations are verified: an embedding hardly tells a picture from its mirror (nor
        # does a symmetric layout), so the best query does not say which one the copy is.
        for flipped in (False, True):
            theirs = mirrored[row] if flipped else plain[row]
            distance = bin(int(theirs) ^ from_signed64(int(phash_of[uid]))).count("1")
            found.append(source.candidate(uid, task.shard, row, distance, flipped, value))
    return found, measured


def search_vectors(
    executor: SparkExecutor,
    dataset: Dataset,
    shards: list[int],
    source: VectorSource,
    queries: np.ndarray,
    benchmark: pa.Table,
    earlier: list[Candidate],
    min_similarity: float,
) -> tuple[list[Candidate], dict[tuple[str, int], float]]:
    """``source``'s candidates in every raw shard, and the similarities of the ``earlier``
    candidates' pairs."""
    known: dict[int, set[tuple[str, int]]] = {}
    for c in earlier:
        known.setdefault(c.shard, set()).add((c.uid, c.benchmark_row))
    tasks = [SearchTask(shard, tuple(sorted(known.get(shard, ())))) for shard in shards]
    plain = benchmark.column("phash").to_pylist()
    mirror = benchmark.column("phash_flipped").to_pylist()
    flipped = [h if v is None else v for h, v in zip(plain, mirror, strict=True)]
    phashes = (
        np.array([from_signed64(v) for v in plain], dtype=np.uint64),
        np.array([from_signed64(v) for v in flipped], dtype=np.uint64),
    )
    context = executor.context
    queries_broadcast, phash_broadcast = context.broadcast(queries), context.broadcast(phashes)
    try:
        results = executor.map(
            SearchVectors(dataset, source, queries_broadcast, phash_broadcast, min_similarity), tasks
        )
    finally:
        queries_broadcast.destroy()
        phash_broadcast.destroy()
    found = [c for r in results for c in r["found"]]
    measured = {pair: value for r in results for pair, value in r["measured"]}
    return found, measured
