"""The index job on a real scored dataset: real Spark, the tiny random CLIP model's embeddings."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.dataset import Dataset
from pipeline.errors import UserInputError
from pipeline.executor import SparkExecutor
from pipeline.index.job import IndexStage, format_summary
from pipeline.index.params import RERANK_FACTOR
from pipeline.index.reader import KnnIndex
from tests.conftest import SparkSubmit


@pytest.fixture(scope="module")
def embedded(scored_with_embeddings: Path) -> Path:
    """The session world scored with --save-embeddings (tests/conftest.py; read-only: tests copy it)."""
    return scored_with_embeddings


def _copy(dataset: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "dataset"
    shutil.copytree(dataset, copy)
    return copy


def _build(spark, dataset: Path, *extra: str) -> dict:
    stage = IndexStage()
    options = stage.parse(["--dataset", str(dataset), *extra])
    stage.check_inputs(options)
    return stage.run(SparkExecutor(spark), options)


def _stored(dataset: Path, kind: str = "image") -> tuple[list[str], np.ndarray]:
    ds = Dataset(str(dataset))
    uids, vectors = [], []
    for shard in ds.scores.complete_indices():
        uids += ds.scores.shard(shard).table(["uid"]).column("uid").to_pylist()
        data = ds.storage.read_bytes(*ds.scores.shard(shard).embeddings_file(kind))
        vectors.append(np.load(io.BytesIO(data)).astype(np.float32))
    return uids, np.concatenate(vectors)


def test_flat_index_of_images_and_texts_finds_each_stored_embedding(
    spark, embedded: Path, tmp_path: Path
) -> None:
    dataset = _copy(embedded, tmp_path)
    summary = _build(spark, dataset, "--text")
    uids, vectors = _stored(dataset)
    image = summary["indexes"]["image"]
    assert summary["model"] == "corpusforge-tiny" and summary["vectors"] == len(uids) > 40
    assert image["params"]["factory"] == "Flat" and image["ntotal"] == len(uids)
    assert image["recall_at_10"] == 1.0 and image["recall_queries"] == len(uids)  # all, fewer than 1000
    assert summary["indexes"]["text"]["ntotal"] == len(uids)
    assert "recall@10 1.000" in format_summary(summary)
    ds = Dataset(str(dataset))
    assert (
        json.loads((dataset / "index" / "_summary.json").read_text())["indexes"]["image"]["recall_at_10"]
        == 1.0
    )
    assert not (dataset / "index" / "parts" / "image").exists()  # parts removed after the merge

    index = KnnIndex.open(ds)
    assert (index.kind, index.model, index.dim, index.ntotal) == ("image", "corpusforge-tiny", 64, len(uids))
    assert index.uids() == uids
    normalised = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    for position in range(0, len(uids), 7):
        uid = uids[position]
        stored = index.embedding(uid)
        assert stored is not None and np.array_equal(stored, vectors[position])
        hits = index.search(stored[None, :], 5)[0]
        assert len(hits) == 5 and hits[0][1] >= hits[-1][1]
        # Itself, or an identical picture tied with it (the world has exact duplicates).
        best = [u for u, s in hits if s >= hits[0][1] - 1e-4]
        assert uid in best and hits[0][1] == pytest.approx(1.0, abs=1e-3)
        exact = np.argsort(-(normalised @ normalised[position]), kind="stable")[:5]
        assert [s for _, s in hits] == pytest.approx(
            [float(normalised[i] @ normalised[position]) for i in exact], abs=1e-4
        )
    assert index.embedding("no-such-uid") is None
    assert KnnIndex.open(ds, "text").ntotal == len(uids)


def test_forced_hnsw_and_ivfpq_report_their_recall_and_search_setting(
    spark, embedded: Path, tmp_path: Path
) -> None:
    dataset = _copy(embedded, tmp_path)
    hnsw = _build(spark, dataset, "--index-type", "hnsw")["indexes"]["image"]
    assert hnsw["params"]["factory"].startswith("HNSW") and hnsw["search_param"] == "efSearch"
    assert hnsw["recall_at_10"] >= 0.95 and hnsw["recall_tried"]
    ivfpq = _build(spark, dataset, "--index-type", "ivfpq", "--overwrite")["indexes"]["image"]
    assert ivfpq["params"]["factory"].startswith("IVF") and ivfpq["search_param"] == "nprobe"
    # Re-ranked by exact cosine with the stored vectors (the default): the codes' lost ranking back.
    assert ivfpq["rerank"] == RERANK_FACTOR and ivfpq["recall_at_10"] >= 0.95 and ivfpq["recall_tried"]
    index = KnnIndex.open(Dataset(str(dataset)))
    uids, vectors = _stored(dataset)
    normalised = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    where = {uid: i for i, uid in enumerate(uids)}
    for position in range(0, len(uids), 9):
        hits = index.search(index.embedding(uids[position])[None, :], 10)[0]
        assert uids[position] in [u for u, s in hits if s >= hits[0][1] - 1e-4]
        # The similarities are the exact ones of the stored vectors (not the codes'), best first.
        exact = [float(normalised[where[u]] @ normalised[position]) for u, _ in hits]
        assert [s for _, s in hits] == pytest.approx(exact, abs=1e-5) and exact == sorted(exact, reverse=True)


def test_a_rerun_resumes_the_committed_parts(spark, embedded: Path, tmp_path: Path) -> None:
    dataset = _copy(embedded, tmp_path)
    stage = IndexStage()
    options = stage.parse(["--dataset", str(dataset)])
    plan = stage.plan(options)
    executor = SparkExecutor(spark)
    first = plan.tasks()[:1]  # a job killed after its first task committed
    assert executor.map(plan.step(Dataset(str(dataset))), first)[0]["resumed"] is False
    summary = stage.run(executor, options)
    image = summary["indexes"]["image"]
    assert image["parts"] == 3 and image["parts_resumed"] == 1 and image["recall_at_10"] == 1.0
    again = stage.run(executor, options)["indexes"]["image"]
    assert again["resumed"] is True and again["ntotal"] == image["ntotal"]
    # Nothing was trained or added again: the merged build's parts stay removed.
    assert again["parts_resumed"] == 3 and not (dataset / "index" / "parts" / "image").exists()


def _check(dataset: Path, *extra: str) -> None:
    stage = IndexStage()
    stage.check_inputs(stage.parse(["--dataset", str(dataset), *extra]))


def test_inputs_are_refused_before_spark_with_the_reason(
    embedded: Path, scored: Path, tmp_path: Path
) -> None:
    with pytest.raises(
        UserInputError, match=r"no complete score shards: run spark-submit jobs/score.py .*--save-embeddings"
    ):
        _check(tmp_path / "empty")
    dataset = _copy(embedded, tmp_path)
    embeddings = dataset / "scores" / "embeddings"
    (embeddings / "00001_text.npy").unlink()
    _check(dataset)  # the text embeddings are only needed with --text
    with pytest.raises(UserInputError, match=r"00001_text.npy is missing.*--save-embeddings"):
        _check(dataset, "--text")
    np.save(embeddings / "00002_image.npy", np.zeros((3, 64), dtype=np.float16))
    with pytest.raises(UserInputError, match=r"00002_image.npy has 3 rows but score shard 00002 has \d+"):
        _check(dataset)
    marker = dataset / "scores" / "00001_stats.json"
    stats = json.loads(marker.read_text())
    marker.write_text(json.dumps({**stats, "model": "ViT-B-32"}))
    with pytest.raises(
        UserInputError,
        match=r"score shard 00001 was scored with ViT-B-32 .* shard 00000 with corpusforge-tiny",
    ):
        _check(dataset)
    marker.unlink()
    with pytest.raises(UserInputError, match=r"score shard 00001 is incomplete"):
        _check(dataset)
    with pytest.raises(
        UserInputError,
        match=r"00000_image.npy is missing: score shard 00000 was scored without --save-embeddings",
    ):
        _check(scored)
    with pytest.raises(UserInputError, match=r"no image index: run spark-submit jobs/index.py --dataset"):
        KnnIndex.open(Dataset(str(embedded)))


def test_spark_submit_refuses_a_dataset_without_scores(tmp_path: Path, spark_submit: SparkSubmit) -> None:
    result = spark_submit("index", "--dataset", str(tmp_path / "ds"))
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "jobs/score.py" in output and "SparkContext" not in output


def test_help_and_docs_list_every_option() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "explore.md").read_text()
    for action in IndexStage().parser()._actions:
        for flag in action.option_strings:
            if flag.startswith("--") and flag != "--help":
                assert f"`{flag}`" in doc, f"{flag} is missing from docs/explore.md"
