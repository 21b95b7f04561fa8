"""Dedup matches written by hand and helpers to read final/ (the scored dataset, ``scored``, is in
tests/conftest.py, shared with the report tests)."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from schemas.dedup import MATCHES_SCHEMA
from tests.stages import build_options as options_from_args


@pytest.fixture
def dataset(scored: Path, tmp_path: Path) -> Path:
    """A private copy of the scored dataset."""
    copy = tmp_path / "dataset"
    shutil.copytree(scored, copy)
    return copy


def build_options(dataset: Path, *extra: str):
    return options_from_args(["--dataset", str(dataset), *extra])


def raw_rows(dataset: Path) -> dict[str, dict]:
    """Successes of raw/ by uid, with their raw shard number."""
    rows = {}
    for path in sorted((dataset / "raw").glob("*.parquet")):
        if path.stem.isdigit():
            for row in pq.read_table(path).to_pylist():
                if row["status"] == "success":
                    rows[row["uid"]] = {**row, "raw_shard": int(path.stem)}
    return rows


def scores(dataset: Path) -> dict[str, float]:
    out = {}
    for path in sorted((dataset / "scores").glob("*.parquet")):
        table = pq.read_table(path)
        out.update(zip(table.column("uid").to_pylist(), table.column("clip_score").to_pylist(), strict=True))
    return out


def write_matches(dataset: Path, rows: list[dict]) -> Path:
    """dedup/matches.parquet following schemas.dedup.MATCHES_SCHEMA."""
    (dataset / "dedup").mkdir(exist_ok=True)
    path = dataset / "dedup" / "matches.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=MATCHES_SCHEMA), path)
    return path


def final_shards(dataset: Path) -> list[Path]:
    return sorted((dataset / "final").glob("*.tar"))


def read_final(dataset: Path) -> list[list[tuple[str, dict[str, bytes]]]]:
    """Every final shard as a list of (key, {ext: bytes}) in tar order."""
    out = []
    for path in final_shards(dataset):
        samples: list[tuple[str, dict[str, bytes]]] = []
        with tarfile.open(path) as tar:
            for member in tar:
                key, ext = member.name.split(".", 1)
                if not samples or samples[-1][0] != key:
                    samples.append((key, {}))
                samples[-1][1][ext] = tar.extractfile(member).read()
        out.append(samples)
    return out


def selection(dataset: Path) -> dict[str, dict]:
    """final/_selection/ records by uid."""
    table = pq.read_table(dataset / "final" / "_selection")
    return {r["uid"]: r for r in table.to_pylist()}


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())
