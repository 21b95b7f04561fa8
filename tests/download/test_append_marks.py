"""--append's input side: new shards after the old ones, row indices that never collide, and the
rows to skip found the same way on the driver and with Spark."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pytest

from pipeline.dataset import Dataset
from pipeline.download.append import append_list
from pipeline.download.duplicates import mark_duplicates, read_shard_duplicates
from pipeline.download.input_shards import prepare_input_shards
from pipeline.errors import UserInputError
from pipeline.ingest import IngestOptions
from pipeline.shards.raw_writer import raw_row
from schemas.raw_shard import RAW_SHARD_SCHEMA

S = 5
# Outcomes of list A's 12 rows in the fabricated raw shards.
OUTCOMES = {**dict.fromkeys(range(6), ("success", None, None))}
OUTCOMES |= {i: ("failed", "http_error", 404) for i in (6, 7, 8)}
OUTCOMES |= {
    9: ("failed", "timeout", None),
    10: ("failed", "timeout", None),
    11: ("failed", "http_error", 503),
}


def write_tsv(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("".join(f"{caption}\t{url}\n" for caption, url in rows))
    return path


def downloaded_a(root: Path, tmp_path: Path) -> Dataset:
    """List A cut into 3 input shards, its duplicates marked, and raw shards with OUTCOMES."""
    list_a = write_tsv(tmp_path / "a.tsv", [(f"caption {i}", f"http://img.test/a{i}.jpg") for i in range(12)])
    dataset = Dataset(str(root))
    manifest = prepare_input_shards(dataset, IngestOptions(urls=str(list_a)), S)
    mark_duplicates(None, dataset, manifest["shard_count"], S, manifest["rows"])
    for shard in range(manifest["shard_count"]):
        rows = []
        for row in dataset.input.shard(shard).table_file.read().to_pylist():
            status, error, http = OUTCOMES[row["row_index"]]
            rows.append(
                raw_row(
                    uid=row["uid"],
                    row_index=row["row_index"],
                    url=row["url"],
                    caption=row["caption"],
                    status=status,
                    error_class=error,
                    http_status=http,
                )
            )
        raw = dataset.raw.shard(shard)
        dataset.storage.write_parquet(
            pa.Table.from_pylist(rows, schema=RAW_SHARD_SCHEMA), *raw.table_file.parts
        )
        dataset.storage.write_json({"rows": len(rows)}, *raw.marker)
    return dataset


LIST_B = [
    ("caption 0", "http://img.test/a0.jpg"),  # 15: the pair is in the dataset
    ("other caption", "http://img.test/a1.jpg"),  # 16: URL stored
    ("other caption", "http://img.test/a6.jpg"),  # 17: URL failed with a 404
    ("other caption", "http://img.test/a9.jpg"),  # 18: URL timed out (may recover): only a URL repeat
    ("other caption", "http://img.test/a11.jpg"),  # 19: URL got a 503: only a URL repeat
    ("new", "http://img.test/new1.jpg"),  # 20: new
    ("new", "http://img.test/new1.jpg"),  # 21: the same pair again within the list
    ("newer", "http://img.test/new1.jpg"),  # 22: its URL again
    ("no url", ""),  # 23: unusable, never marked
    ("new", "http://img.test/new2.jpg"),  # 24: new
]


def all_marks(dataset: Dataset, shards: range) -> dict[int, str]:
    found: dict[int, str] = {}
    for shard in shards:
        found.update(read_shard_duplicates(dataset, shard))
    return found


def test_append_numbers_new_shards_and_rows_after_the_old_and_marks_the_same_on_driver_and_spark(
    executor, tmp_path: Path
) -> None:
    list_b = write_tsv(tmp_path / "b.tsv", LIST_B)
    base = downloaded_a(tmp_path / "base", tmp_path)
    results = {}
    for name, limit in (("driver", 10_000), ("spark", 0)):
        shutil.copytree(tmp_path / "base", tmp_path / name)
        dataset = Dataset(str(tmp_path / name))
        manifest = append_list(
            executor, dataset, IngestOptions(urls=str(list_b)), S, ("stored", "failed"), limit
        )
        results[name] = (manifest["appended"][0]["marked"], all_marks(dataset, range(3, 5)))
    assert results["driver"] == results["spark"]
    marked, found = results["driver"]
    assert found == {
        15: "duplicate_pair",
        16: "url_already_stored",
        17: "url_already_failed",
        18: "duplicate_url",
        19: "duplicate_url",
        21: "duplicate_pair",
        22: "duplicate_url",
    }
    assert marked == {
        "duplicate_pair": 2,
        "url_already_stored": 1,
        "url_already_failed": 1,
        "duplicate_url": 3,
    }

    dataset = Dataset(str(tmp_path / "driver"))
    manifest = dataset.input.manifest()
    part = manifest["appended"][0]
    assert (manifest["shard_count"], manifest["rows"]) == (5, 22)
    assert (part["first_shard"], part["shard_count"], part["first_row"], part["rows"]) == (3, 2, 15, 10)
    assert part["ingest_errors"] == {"missing_url": 1} and manifest["ingest_errors"] == {"missing_url": 1}
    assert manifest["signature"] == base.input.manifest()["signature"]  # old shards keep their fingerprints
    rows = [dataset.input.shard(k).table_file.read().column("row_index").to_pylist() for k in range(5)]
    assert rows == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11], [15, 16, 17, 18, 19], [20, 21, 22, 23, 24]]
    assert all_marks(dataset, range(3)) == all_marks(base, range(3))  # the old shards' marks are untouched

    # The same list again adds nothing; without the URL skips only pairs and URL repeats are marked.
    again = append_list(executor, dataset, IngestOptions(urls=str(list_b)), S, ("stored", "failed"))
    assert again == manifest
    shutil.copytree(tmp_path / "base", tmp_path / "plain")
    plain = Dataset(str(tmp_path / "plain"))
    append_list(executor, plain, IngestOptions(urls=str(list_b)), S)
    assert all_marks(plain, range(3, 5)) == {**found, 16: "duplicate_url", 17: "duplicate_url"}


def test_append_refuses_another_shard_size_and_url_skips_over_an_unfinished_download(
    executor, tmp_path: Path
) -> None:
    list_b = write_tsv(tmp_path / "b.tsv", LIST_B)
    dataset = downloaded_a(tmp_path / "ds", tmp_path)
    with pytest.raises(UserInputError, match="--samples-per-shard 5"):
        append_list(executor, dataset, IngestOptions(urls=str(list_b)), 7)
    (tmp_path / "ds" / "raw" / "00001_stats.json").unlink()
    with pytest.raises(UserInputError, match="00001"):
        append_list(executor, dataset, IngestOptions(urls=str(list_b)), S, ("stored",))
    # Pair skips need no raw shard: that append goes ahead.
    manifest = append_list(executor, dataset, IngestOptions(urls=str(list_b)), S)
    assert manifest["shard_count"] == 5
    assert json.loads((tmp_path / "ds" / "_input" / "_manifest.json").read_text()) == manifest
