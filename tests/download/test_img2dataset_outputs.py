"""What the download job writes for img2dataset users: --verify-hash, raw/sizes.json and the
--output-format parquet|files copy, on the loopback world server with real Spark."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tarfile
import urllib.request
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.dataset import Dataset
from pipeline.download.export import ExportShardStep
from pipeline.synthetic.server import WorldServer
from tests.stages import download

ROWS = 24
SHARD = 12


def _url_list(world: Path, base_url: str, out: Path) -> Path:
    """World images with a sha256 column: right for most rows, wrong for row 3, empty for row 4;
    row 5 is a 404 and row 6 undecodable."""
    table = pq.read_table(world / "world.parquet").slice(0, ROWS).to_pylist()
    rows = []
    for i, row in enumerate(table):
        path = {5: f"fault/404/{row['file']}", 6: f"fault/corrupt/{row['file']}"}.get(i, row["file"])
        served = (world / row["file"]).read_bytes()
        if i == 6:  # the corrupt fault's bytes (a row whose hash matches fails later, as undecodable)
            with urllib.request.urlopen(f"{base_url}/{path}", timeout=30) as response:
                served = response.read()
        digest = hashlib.sha256(served).hexdigest()
        sha = {3: "0" * 64, 4: ""}.get(i, digest.upper() if i == 7 else digest)  # case does not matter
        rows.append({"URL": f"{base_url}/{path}", "TEXT": row["caption"], "sha": sha, "label": row["label"]})
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), out / "urls.parquet")
    return out / "urls.parquet"


@pytest.fixture(scope="module")
def exported(spark: Any, world: Path, server: WorldServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.stages import download_options

    root = tmp_path_factory.mktemp("i2d-outputs")
    urls = _url_list(world, server.base_url, root / "lists")
    options = download_options(
        [
            "--url_list", str(urls), "--output_folder", str(root / "ds"),
            "--allow-network", "127.0.0.1/32", "--timeout", "5",
            "--number_sample_per_shard", str(SHARD), "--save_additional_columns", "label",
            "--verify_hash", "['sha','sha256']", "--output_format", "parquet",
        ]
    )  # fmt: skip
    summary = download(spark, options)
    assert summary["export"]["shards"] == 2 and summary["export"]["written"] == 2
    again = download(spark, options)  # a resume: raw shards and their copies are all kept
    assert again["export"]["written"] == 0
    return root / "ds"


def _raw_rows(dataset: Path) -> list[dict[str, Any]]:
    return [r for k in (0, 1) for r in pq.read_table(dataset / "raw" / f"{k:05d}.parquet").to_pylist()]


def _tar_members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def test_verify_hash_fails_rows_whose_bytes_have_another_digest(exported: Path) -> None:
    rows = {r["row_index"]: r for r in _raw_rows(exported)}
    assert rows[3]["error_class"] == rows[4]["error_class"] == "hash_mismatch"
    assert "column 'sha' says 0000" in rows[3]["error_message"]
    assert "no expected sha256 in column 'sha'" in rows[4]["error_message"]
    assert rows[5]["error_class"] == "http_error" and rows[6]["error_class"] == "undecodable"
    assert rows[7]["status"] == "success"  # an upper-case digest matches
    successes = [r for r in rows.values() if r["status"] == "success"]
    assert len(successes) == ROWS - 4
    assert all(json.loads(r["extra"])["sha"].lower() == r["sha256"] for r in successes)


def test_sizes_json_counts_each_raw_tar(exported: Path) -> None:
    sizes = json.loads((exported / "raw" / "sizes.json").read_text())
    tars = {name: _tar_members(exported / "raw" / name) for name in ("00000.tar", "00001.tar")}
    assert sizes == {name: sum(m.endswith(".jpg") for m in members) for name, members in tars.items()}
    assert sum(sizes.values()) == ROWS - 4


def test_parquet_copy_has_img2dataset_columns_and_the_stored_images(exported: Path) -> None:
    folder = exported / "export" / "parquet"
    assert sorted(p.name for p in folder.iterdir()) == [
        "00000.parquet", "00000_stats.json", "00001.parquet", "00001_stats.json",
    ]  # fmt: skip
    table = pq.read_table(folder / "00000.parquet")
    assert table.column_names == [
        "label", "sha", "caption", "url", "key", "status", "error_message", "width", "height",
        "original_width", "original_height", "sha256", "jpg", "uid", "error_class",
    ]  # fmt: skip
    copied = table.to_pylist()
    raw = {r["uid"]: r for r in _raw_rows(exported) if r["row_index"] < SHARD}
    assert sorted(r["uid"] for r in copied) == sorted(raw)  # every input row
    members = _tar_members(exported / "raw" / "00000.tar")
    for row in copied:
        source = raw[row["uid"]]
        assert row["key"] == f"{source['row_index']:09d}"  # img2dataset's kind of key
        if source["status"] == "success":
            assert row["status"] == "success" and row["jpg"] == members[f"{row['uid']}.jpg"]
            assert (row["width"], row["sha256"], row["label"]) == (
                source["width"],
                source["sha256"],
                json.loads(source["extra"])["label"],
            )
        else:
            assert row["jpg"] is None and row["error_class"] == source["error_class"]
    status = {raw[r["uid"]]["row_index"]: r["status"] for r in copied}
    assert status[5] == "failed_to_download" and status[6] == "failed_to_resize"
    stats = json.loads((folder / "00000_stats.json").read_text())
    assert (stats["count"], stats["successes"], stats["failed_to_download"], stats["failed_to_resize"]) == (
        SHARD,
        SHARD - 4,
        3,
        1,
    )
    assert stats["status_dict"] == {
        "hash_mismatch": 2,
        "http_error": 1,
        "undecodable": 1,
        "success": SHARD - 4,
    }


def test_files_copy_one_folder_per_shard(exported: Path) -> None:
    dataset = Dataset(str(exported))
    step = ExportShardStep(dataset.url, "files", "jpg")
    assert step.completed(1) is None
    stats = step.process(1, None)
    assert stats["count"] == SHARD and not stats["resumed"]
    folder = exported / "export" / "files"
    members = _tar_members(exported / "raw" / "00001.tar")
    key_of = {r["uid"]: f"{r['row_index']:09d}" for r in _raw_rows(exported)}
    uids = sorted({name.split(".")[0] for name in members})
    files = sorted(p.name for p in (folder / "00001").iterdir())
    assert files == sorted(f"{key_of[uid]}.{ext}" for uid in uids for ext in ("jpg", "json", "txt"))
    for uid in uids:
        key = key_of[uid]
        assert (folder / "00001" / f"{key}.jpg").read_bytes() == members[f"{uid}.jpg"]
        assert (folder / "00001" / f"{key}.txt").read_bytes() == members[f"{uid}.txt"]
        meta = json.loads((folder / "00001" / f"{key}.json").read_text())
        assert (meta["key"], meta["uid"], meta["status"]) == (key, uid, "success")
    assert "jpg" not in pq.read_schema(folder / "00001.parquet").names
    assert pq.read_table(folder / "00001.parquet").num_rows == SHARD
    assert step.completed(1) is not None and step.process(1, None)["resumed"] is True
    # A stale file of an earlier version of the shard does not survive a redo.
    (folder / "00001" / "stale.jpg").write_bytes(b"x")
    (folder / "00001_stats.json").unlink()
    step.process(1, None)
    assert not (folder / "00001" / "stale.jpg").exists()


@pytest.mark.parametrize("layout", ["parquet", "files"])
def test_exported_copy_imports_back_as_the_same_raw_shards(
    spark: Any, exported: Path, tmp_path: Path, layout: str
) -> None:
    from pipeline.executor import SparkExecutor
    from pipeline.image.phash import from_signed64
    from pipeline.imports.job import ImportStage

    if layout == "files":  # the module fixture exported parquet; the files copy is made here
        for shard in (0, 1):
            ExportShardStep(str(exported), "files", "jpg").process(shard, None)
    stage = ImportStage()
    options = stage.parse(
        ["--source", str(exported / "export" / layout), "--dataset", str(tmp_path / "back")]
    )
    stage.check_inputs(options)
    summary = stage.run(SparkExecutor(spark), options)
    assert summary["rows"] == ROWS and summary["successes"] == ROWS - 4
    original = {r["uid"]: r for r in _raw_rows(exported)}
    back = {r["uid"]: r for r in _raw_rows(tmp_path / "back")}
    assert back.keys() == original.keys()
    for uid, row in back.items():
        was = original[uid]
        same = ("row_index", "url", "caption", "status", "error_class", "width", "height", "sha256")
        assert {k: row[k] for k in same} == {k: was[k] for k in same}
        if row["status"] == "success":
            # The same stored bytes; the download hashed them before JPEG encoding, the import after.
            distance = bin(from_signed64(row["phash"]) ^ from_signed64(was["phash"])).count("1")
            assert distance <= 4 and row["stored_bytes"] == was["stored_bytes"]
            assert json.loads(row["extra"])["label"] == json.loads(was["extra"])["label"]
    for name in ("00000.tar", "00001.tar"):
        ours, theirs = _tar_members(exported / "raw" / name), _tar_members(tmp_path / "back" / "raw" / name)
        assert {k: v for k, v in ours.items() if k.endswith(".jpg")} == {
            k: v for k, v in theirs.items() if k.endswith(".jpg")
        }


def _corpusforge(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args], capture_output=True, text=True, timeout=600
    )


def test_import_command_refuses_a_folder_that_is_not_img2dataset_output_before_spark(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    result = _corpusforge(
        "import-img2dataset", "--source", str(tmp_path / "src"), "--dataset", str(tmp_path / "d")
    )
    assert result.returncode == 2
    assert "no complete img2dataset shard" in result.stderr and "SparkContext" not in result.stderr


@pytest.mark.slow
def test_import_command_runs_spark_itself(exported: Path, tmp_path: Path) -> None:
    source = exported / "export" / "parquet"
    result = _corpusforge("import-img2dataset", "--source", str(source), "--dataset", str(tmp_path / "d"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "import summary" in result.stdout and "from img2dataset" in result.stdout
    assert json.loads((tmp_path / "d" / "raw" / "_summary.json").read_text())["successes"] == ROWS - 4
