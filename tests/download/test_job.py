"""The download job on a real local Spark session against the real fault server."""

from __future__ import annotations

import json
import tarfile
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.synthetic.server import WorldServer
from pipeline.synthetic.world import write_url_lists
from tests.stages import download as run
from tests.stages import download_options as options_from_args

EXPECTED = {
    None: ("success", None),
    "404": ("failed", "http_error"),
    "410": ("failed", "http_error"),
    "500": ("failed", "http_error"),
    "503_then_ok": ("success", None),
    "429_then_ok": ("success", None),
    "slow": ("failed", "timeout"),
    "reset": ("failed", "connection_reset"),
    "truncated": ("failed", "truncated"),
    "wrong_type": ("failed", "bad_content_type"),
    "html_as_jpeg": ("failed", "undecodable"),
    "svg_as_jpeg": ("failed", "undecodable"),
    "huge": ("failed", "image_too_large"),
    "corrupt": ("failed", "undecodable"),
    "empty": ("failed", "undecodable"),
    "redirect": ("success", None),
    "redirect_loop": ("failed", "too_many_redirects"),
    "redirect_private": ("failed", "address_refused"),
    "optout": ("failed", "opted_out"),
    "gzip_bomb": ("failed", "too_large"),
    "bad:missing_url": ("skipped", "missing_url"),
    "bad:unsupported_scheme": ("skipped", "unsupported_scheme"),
    "bad:invalid_url": ("skipped", "invalid_url"),
    "bad:empty_caption": ("skipped", "empty_caption"),
    "bad:duplicate_pair": ("skipped", "duplicate_pair"),
    "bad:duplicate_url": ("success", None),  # same URL, other caption: a distinct pair
}


def raw_rows(dataset: Path) -> list[dict]:
    return [r for f in sorted((dataset / "raw").glob("*.parquet")) for r in pq.read_table(f).to_pylist()]


def tar_members(dataset: Path) -> Counter[str]:
    names: Counter[str] = Counter()
    for path in sorted((dataset / "raw").glob("*.tar")):
        with tarfile.open(path) as tar:
            names.update(tar.getnames())
    return names


@pytest.fixture
def fault_list(world: Path, server: WorldServer, tmp_path: Path) -> dict[str, Path]:
    return write_url_lists(world, server.base_url, faults_per_kind=1, bad_rows=True, out=tmp_path / "lists")


def test_every_fault_and_bad_row_is_accounted_for(
    spark, fault_list, download_options, tmp_path: Path
) -> None:
    options = download_options(
        fault_list["parquet"], "--keep-cols", "fault,label", "--samples-per-shard", "30"
    )
    summary = run(spark, options)
    dataset = tmp_path / "dataset"
    rows = raw_rows(dataset)
    input_rows = pq.read_table(fault_list["parquet"]).num_rows
    # One row per input row, each exactly once.
    assert sorted(r["row_index"] for r in rows) == list(range(input_rows))
    for r in rows:
        fault = json.loads(r["extra"])["fault"] if r["extra"] else None
        assert (r["status"], r["error_class"]) == EXPECTED[fault], (fault, r["error_message"])
        if r["status"] == "failed":
            assert r["url"] in r["error_message"]  # every failure names its URL
    # Exactly the successes are in the tars, with image, caption and metadata.
    successes = {r["uid"] for r in rows if r["status"] == "success"}
    members = tar_members(dataset)
    assert set(members.values()) == {1}
    assert set(members) == {f"{uid}.{ext}" for uid in successes for ext in ("jpg", "txt", "json")}
    assert all(len(r["sha256"]) == 64 and r["phash"] is not None for r in rows if r["status"] == "success")
    # The summary adds up.
    assert summary["rows"] == input_rows == summary["input_rows"]
    assert summary["successes"] + summary["failed"] + summary["skipped"] == input_rows
    assert summary["successes"] == len(successes)
    assert summary["duplicates_found"] == {"duplicate_pair": 1, "duplicate_url": 1}
    assert sum(summary["errors"].values()) == summary["failed"] + summary["skipped"]

    # A rerun resumes: nothing is downloaded or rewritten, and the outputs stay the same.
    stamps = {p.name: p.stat().st_mtime_ns for p in (dataset / "raw").iterdir() if p.name != "_summary.json"}
    again = run(spark, options)
    assert again["shards_resumed"] == again["shards"] and again["successes_this_run"] == 0
    assert {k: again[k] for k in ("rows", "successes", "failed", "errors")} == {
        k: summary[k] for k in ("rows", "successes", "failed", "errors")
    }
    assert stamps == {
        p.name: p.stat().st_mtime_ns for p in (dataset / "raw").iterdir() if p.name != "_summary.json"
    }


def test_safety_defaults_refuse_a_loopback_server(
    spark, fault_list, tmp_path: Path, server: WorldServer
) -> None:
    before = sum(server.requests.values())
    options = options_from_args(["--urls", str(fault_list["tsv"]), "--dataset", str(tmp_path / "ds")])
    summary = run(spark, options)
    rows = raw_rows(tmp_path / "ds")
    fetched = [r for r in rows if r["status"] != "skipped"]
    assert fetched and all(r["error_class"] == "address_refused" for r in fetched)
    assert summary["successes"] == 0
    assert sum(server.requests.values()) == before  # not one request reached the server


def test_cc3m_tsv_with_duplicate_urls_skipped(spark, fault_list, download_options, tmp_path: Path) -> None:
    options = download_options(fault_list["tsv"], "--skip-duplicate-urls", "--samples-per-shard", "50")
    summary = run(spark, options)
    rows = raw_rows(tmp_path / "dataset")
    by_error = Counter(r["error_class"] for r in rows if r["status"] == "skipped")
    assert by_error["duplicate_pair"] == 1 and by_error["duplicate_url"] == 1
    assert summary["shards"] == 2
    # The TSV (CC3M, no header) gives the same uids as the parquet list for the same pairs.
    first = next(r for r in rows if r["row_index"] == 0)
    assert first["status"] == "success" and first["caption"]


def test_changing_the_list_under_a_dataset_is_refused(
    spark, fault_list, download_options, tmp_path: Path
) -> None:
    from pipeline.errors import UserInputError

    run(spark, download_options(fault_list["tsv"], "--samples-per-shard", "50"))
    with pytest.raises(UserInputError, match="--overwrite"):
        run(spark, download_options(fault_list["tsv"], "--samples-per-shard", "40"))
    with pytest.raises(UserInputError, match="other image options.*--overwrite"):
        run(spark, download_options(fault_list["tsv"], "--samples-per-shard", "50", "--image-size", "128"))
    summary = run(spark, download_options(fault_list["tsv"], "--samples-per-shard", "40", "--overwrite"))
    assert summary["shards"] == 3 and summary["shards_resumed"] == 0


def test_an_empty_list_gives_an_empty_dataset(spark, download_options, tmp_path: Path) -> None:
    empty = tmp_path / "empty.tsv"
    empty.write_text("")
    summary = run(spark, download_options(empty))
    assert summary["rows"] == 0 and summary["shards"] == 0 and summary["successes"] == 0
