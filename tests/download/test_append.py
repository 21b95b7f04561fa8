"""--append on real Spark: a second list becomes new shards of the same dataset, without duplicates,
and the later stages see every shard."""

from __future__ import annotations

import json
import shutil
import tarfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.build.inputs import discover_inputs
from pipeline.dataset import Dataset
from pipeline.errors import UserInputError
from testkit.flaky import FlakyServer
from tests.download.test_retry_failed import raw_rows, stamps, tar_members, write_list
from tests.stages import build, build_options
from tests.stages import download as run
from tests.stages import download_options as options_from_args


@pytest.fixture(scope="module")
def flaky() -> Iterator[FlakyServer]:
    with FlakyServer() as server:
        yield server


@dataclass(frozen=True)
class Appended:
    dataset: Path
    list_a: Path
    list_b: Path
    new: list[str]  # list B's new URLs
    summary: dict  # the --append run's


SHARD = ("--samples-per-shard", "4", "--retries", "0")


def options(urls: Path, dataset: Path, *extra: str):
    return options_from_args(
        ["--urls", str(urls), "--dataset", str(dataset), "--allow-network", "127.0.0.1/32", *SHARD, *extra]
    )


@pytest.fixture(scope="module")
def appended(spark, flaky: FlakyServer, tmp_path_factory: pytest.TempPathFactory) -> Appended:
    """List A (8 stored, 2 failing for good) downloaded, then list B added with --append."""
    root = tmp_path_factory.mktemp("append")
    ok = [flaky.url("ok", f"a{i}.jpg") for i in range(8)]
    gone = [flaky.url("gone", f"a{i}.jpg") for i in range(2)]
    list_a = [(u, f"caption {i}") for i, u in enumerate(ok + gone)]
    new = [flaky.url("ok", f"b{i}.jpg") for i in range(4)]
    list_b = [
        *list_a[:3],  # pairs already in the dataset
        (ok[3], "another caption"),  # URL stored already
        (ok[4], "another caption"),
        (gone[0], "another caption"),  # URL failed for good already
        *[(u, f"new {i}") for i, u in enumerate(new)],
        (new[0], "new 0"),  # a pair repeated within the new list
    ]  # 11 rows: 4 new samples
    a = write_list(root / "a.csv", list_a)
    b = write_list(root / "b.csv", list_b)
    dataset = root / "dataset"
    first = run(spark, options(a, dataset))
    assert (first["shards"], first["successes"]) == (3, 8)
    seen = {u: flaky.seen(u) for u, _ in list_b}
    summary = run(spark, options(b, dataset, "--append", "--append-skip-urls", "stored,failed"))
    # Nothing of list B that the dataset had was requested again; its new URLs once each.
    for url, _ in list_b[:6]:
        assert flaky.seen(url) == seen[url], url
    assert all(flaky.seen(u) == 1 for u in new)
    return Appended(dataset, a, b, new, summary)


def test_append_adds_a_list_as_new_shards_without_duplicates(
    spark, appended: Appended, tmp_path: Path
) -> None:
    dataset, a, b = appended.dataset, appended.list_a, appended.list_b
    summary = appended.summary
    assert summary["shards"] == 6 and summary["shards_resumed"] == 3
    assert summary["rows"] == summary["input_rows"] == 21
    assert summary["successes"] == 12 and summary["failed"] == 2
    assert summary["errors"] == {
        "duplicate_pair": 4,
        "url_already_stored": 2,
        "http_error": 2,
        "url_already_failed": 1,
    }
    assert [entry["first_shard"] for entry in summary["lists"]] == [0, 3]

    rows = raw_rows(dataset)
    indices = [r["row_index"] for r in rows]
    assert sorted(indices) == [*range(10), *range(12, 23)]  # list B from shard 3 * 4 rows on
    stored = [r["uid"] for r in rows if r["status"] == "success"]
    assert len(stored) == len(set(stored)) == 12  # a uid is stored once
    members = tar_members(dataset)
    assert set(members.values()) == {1} and len(members) == 3 * 12
    by_index = {r["row_index"]: r for r in rows}
    assert [by_index[i]["error_class"] for i in range(12, 18)] == [
        "duplicate_pair",
        "duplicate_pair",
        "duplicate_pair",
        "url_already_stored",
        "url_already_stored",
        "url_already_failed",
    ]
    assert all(by_index[12 + i]["uid"] == by_index[i]["uid"] for i in range(3))

    # The same append again adds nothing; a plain run with either list resumes every shard.
    manifest = (dataset / "_input" / "_manifest.json").read_bytes()
    files = stamps(dataset)
    for again in (
        options(b, dataset, "--append", "--append-skip-urls", "stored,failed"),
        options(a, dataset),
        options(b, dataset),
    ):
        summary = run(spark, again)
        assert (summary["shards"], summary["shards_resumed"], summary["successes"]) == (6, 6, 12)
    assert (dataset / "_input" / "_manifest.json").read_bytes() == manifest
    assert stamps(dataset) == files
    other = write_list(tmp_path / "c.csv", [("http://127.0.0.1:9/c.jpg", "c")])
    with pytest.raises(UserInputError, match="--append"):
        run(spark, options(other, dataset))

    # The later stages read every shard of both lists (score takes the complete raw shards).
    assert Dataset(str(dataset)).raw.complete_indices() == list(range(6))
    inputs = discover_inputs(build_options(["--dataset", str(dataset)]))
    assert inputs.raw_shards == tuple(range(6))


@pytest.mark.slow
def test_build_shards_keeps_every_sample_of_both_lists(spark, appended: Appended, tmp_path: Path) -> None:
    dataset = tmp_path / "dataset"
    shutil.copytree(appended.dataset, dataset)
    stored = [r["uid"] for r in raw_rows(dataset) if r["status"] == "success"]
    build(spark, build_options(["--dataset", str(dataset), "--samples-per-shard", "5"]))
    final = json.loads((dataset / "final" / "manifest.json").read_text())
    assert final["counts"]["kept"] == 12
    kept = Counter(
        name.split(".")[0] for path in (dataset / "final").glob("*.tar") for name in tar_names(path)
    )
    assert sorted(kept) == sorted(stored) and set(kept.values()) == {3}


def tar_names(path: Path) -> list[str]:
    with tarfile.open(path) as tar:
        return tar.getnames()
