"""A dataset scored by the trained scorer with embeddings, deduplicated by hand, built and indexed;
the explorer opened on it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.executor import SparkExecutor
from pipeline.explore.options import ExploreOptions
from pipeline.explore.server import open_explorer
from pipeline.index.job import IndexStage
from tests.build.conftest import write_matches
from tests.stages import build, build_options


def _matches(dataset: Path) -> list[dict]:
    """A within-corpus group (one kept sample, two near duplicates) and one benchmark match."""
    rows = []
    for path in sorted((dataset / "raw").glob("[0-9]*.parquet")):
        table = pq.read_table(path, columns=["uid", "status"]).to_pylist()
        rows += [(r["uid"], int(path.stem)) for r in table if r["status"] == "success"]
    (kept, _), near, benchmark = rows[0], rows[1:3], rows[3]
    common = {"phash_distance": 2, "centre_distance": None, "thumbnail_distance": 0.01, "verified": True}
    matches = [
        {
            "uid": uid,
            "reason": "near_duplicate",
            "match_id": kept,
            "distance": 2,
            "shard": shard,
            "matched_hash": None,
            "signals": ["phash", "thumbnail"],
            "embedding_similarity": None,
            **common,
        }
        for uid, shard in near
    ]
    matches.append(
        {
            "uid": benchmark[0],
            "reason": "benchmark_duplicate",
            "match_id": "benchmark/000003.jpg",
            "distance": 1,
            "shard": benchmark[1],
            "matched_hash": "phash",
            "signals": ["phash", "thumbnail"],
            "embedding_similarity": None,
            **common,
        }
    )
    return matches


@pytest.fixture(scope="session")
def explored(
    spark, scored_with_embeddings: Path, world: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The dataset the explorer tests read (read-only): dedup matches, build_shards keeping the
    best 70%, and the kNN index of the image and text embeddings."""
    dataset = tmp_path_factory.mktemp("explored") / "dataset"
    shutil.copytree(scored_with_embeddings, dataset)
    write_matches(dataset, _matches(dataset))
    # What the explorer reads of dedup's summary: where the benchmark pictures are.
    summary = {"options": {"benchmarks": [str(world / "benchmark")]}}
    (dataset / "dedup" / "_summary.json").write_text(json.dumps(summary))
    build(spark, build_options(["--dataset", str(dataset), "--top-fraction", "0.7", "--min-shards", "0"]))
    stage = IndexStage()
    options = stage.parse(["--dataset", str(dataset), "--text"])
    stage.check_inputs(options)
    stage.run(SparkExecutor(spark), options)
    return dataset


@pytest.fixture(scope="session")
def explorer(explored: Path):
    return open_explorer(ExploreOptions(dataset=str(explored), page_size=10, max_results=40))
