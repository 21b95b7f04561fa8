"""Duplicate pairs and URLs are found the same way on the driver and with Spark."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.dataset import Dataset
from pipeline.download.duplicates import mark_duplicates, read_shard_duplicates
from pipeline.download.input_shards import prepare_input_shards
from pipeline.ingest import IngestOptions


def write_list(path: Path) -> Path:
    rows = [f"caption {i}\thttp://img.test/{i % 7}.jpg" for i in range(30)]  # URLs repeat every 7 rows
    rows += ["caption 3\thttp://img.test/3.jpg", "caption 3\thttp://IMG.test/3.jpg#frag"]  # same pair twice
    rows += ["broken row without url\t"]
    path.write_text("\n".join(rows) + "\n")
    return path


def marks(root: Path, shards: int) -> dict[int, str]:
    dataset = Dataset(str(root))
    out: dict[int, str] = {}
    for shard in range(shards):
        out.update(read_shard_duplicates(dataset, shard))
    return out


def test_driver_and_spark_paths_agree(executor, tmp_path: Path) -> None:
    urls = write_list(tmp_path / "l.tsv")
    results = {}
    for name, limit in (("driver", 10_000), ("spark", 0)):
        dataset = Dataset(str(tmp_path / name))
        manifest = prepare_input_shards(dataset, IngestOptions(urls=str(urls)), 10)
        counts = mark_duplicates(
            executor, dataset, manifest["shard_count"], 10, manifest["rows"], driver_limit=limit
        )
        results[name] = (counts, marks(tmp_path / name, manifest["shard_count"]))
    assert results["driver"] == results["spark"]
    counts, found = results["driver"]
    # Rows 0-6 are first occurrences; 7..29 repeat a URL with another caption; rows 30 and 31 repeat
    # the pair of row 3 (the second after normalisation); row 32 has no URL and is not a duplicate.
    assert found == {
        **{row: "duplicate_url" for row in range(7, 30)},
        30: "duplicate_pair",
        31: "duplicate_pair",
    }
    assert counts == {"duplicate_pair": 2, "duplicate_url": 23}
    marker = json.loads((tmp_path / "driver" / "_input" / "_duplicates.json").read_text())
    assert marker == counts
