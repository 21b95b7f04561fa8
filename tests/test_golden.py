"""The whole chain gives the same outputs as the design it replaced, bit for bit.

A small synthetic world (faults and bad input rows included) is served on a fixed loopback port
(uids hash the URL, port included) and run through ``spark-submit`` of download, score (a
seeded, randomly initialised corpusforge-tiny), dedup (benchmark and within-corpus) and
build_shards (``--top-fraction``). The record compared holds what users consume: every raw
parquet row, every CLIP score (float32 bits), ``dedup/matches.parquet``, every selection record,
``final/sizes.json`` and the shard list of ``final/manifest.json`` (names, counts, bytes, sha256
of each tar). Timings, the inputs' fingerprints, the order of rows that follows the order
downloads finished in, and the test's temporary path are left out: they differ run to run.

``tests/golden/chain_record.json`` was written by the design before the redesign of issue 15
(``CORPUSFORGE_WRITE_GOLDEN=1`` rewrites it; only do that for an intended change of outputs).
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from pipeline.synthetic.server import WorldServer
from pipeline.synthetic.world import WorldSpec, generate_world, write_url_lists

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

GOLDEN = Path(__file__).parent / "golden" / "chain_record.json"
PORT = 47851  # fixed: the URLs, and with them the uids, contain it


def _scorer(path: Path) -> Path:
    import open_clip
    import torch

    import pipeline

    configs = Path(pipeline.__file__).parent / "score" / "model_configs"
    if "corpusforge-tiny" not in open_clip.list_models():
        open_clip.add_model_config(configs)
    torch.manual_seed(0)
    model = open_clip.create_model("corpusforge-tiny")
    torch.save(model.state_dict(), path)
    return path


def _rows(path: Path) -> list[dict[str, Any]]:
    return pq.read_table(path).to_pylist()


def _float_bits(value: float | None) -> str | None:
    return None if value is None else struct.pack(">f", value).hex()


def _raw_row(row: dict[str, Any], tmp: str) -> dict[str, Any]:
    """A raw parquet row without what depends on the test's temporary folder.

    Messages of bad input rows name the list file; a row without a URL hashes its place in it.
    """
    if row["error_message"]:
        row["error_message"] = row["error_message"].replace(tmp, "<tmp>")
    if row["url"] is None:
        row["uid"] = None
    return row


def _record(dataset: Path, tmp: Path) -> dict[str, Any]:
    raw = {
        p.name: [_raw_row(r, str(tmp)) for r in _rows(p)]
        for p in sorted((dataset / "raw").glob("[0-9]*.parquet"))
    }
    # Scores follow the raw tar's order, which is the order downloads finished in: sorted here.
    scores = {
        p.name: sorted((r["uid"], _float_bits(r["clip_score"]), r["model"]) for r in _rows(p))
        for p in sorted((dataset / "scores").glob("[0-9]*.parquet"))
    }
    selection = {
        p.name: [{**r, "clip_score": _float_bits(r["clip_score"])} for r in _rows(p)]
        for p in sorted((dataset / "final" / "_selection").glob("[0-9]*.parquet"))
    }
    manifest = json.loads((dataset / "final" / "manifest.json").read_text())
    return {
        "raw": raw,
        "scores": scores,
        "matches": _rows(dataset / "dedup" / "matches.parquet"),
        "selection": selection,
        "sizes": json.loads((dataset / "final" / "sizes.json").read_text()),
        "manifest": {
            k: manifest[k] for k in ("shards", "counts", "selection", "total_samples", "total_bytes")
        },
    }


def test_the_chain_gives_the_outputs_of_the_previous_design(tmp_path: Path, spark_submit) -> None:
    world = generate_world(
        tmp_path / "world",
        WorldSpec(images=90, seed=5, benchmark_images=8, planted_duplicates=5, min_side=200, max_side=400),
    )
    dataset = tmp_path / "dataset"
    try:
        server = WorldServer(world, port=PORT, slow_seconds=1.0)
    except OSError as exc:
        pytest.fail(f"port {PORT} is taken ({exc}): the golden record's uids need this exact port")
    with server:
        lists = write_url_lists(world, server.base_url, faults_per_kind=1, bad_rows=True, out=tmp_path)
        download = spark_submit(
            "download",
            *("--urls", str(lists["parquet"]), "--dataset", str(dataset)),
            *("--allow-network", "127.0.0.1/32", "--timeout", "8", "--samples-per-shard", "40"),
            *("--keep-cols", "label,matched,fault"),
        )
        assert download.returncode == 0, download.stdout[-3000:]
    steps = [
        ("score", "--model", "corpusforge-tiny", "--pretrained", str(_scorer(tmp_path / "scorer.pt"))),
        (
            "dedup",
            "--benchmark",
            str(world / "benchmark"),
            "--max-distance",
            "8",
            "--centre-max-distance",
            "4",
        ),
        ("build_shards", "--top-fraction", "0.75", "--samples-per-shard", "16", "--min-shards", "1"),
    ]
    for job, *args in steps:
        result = spark_submit(job, "--dataset", str(dataset), *args)
        assert result.returncode == 0, result.stdout[-3000:]
    record = json.loads(json.dumps(_record(dataset, tmp_path)))  # tuples as lists, as read back from the file
    if os.environ.get("CORPUSFORGE_WRITE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
        pytest.skip(f"wrote {GOLDEN}")
    expected = json.loads(GOLDEN.read_text())
    for part in ("raw", "scores", "matches", "selection", "sizes", "manifest"):
        assert record[part] == expected[part], f"{part} differs from the previous design's output"
