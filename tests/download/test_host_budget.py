"""--group-hosts (each host's rows together) and the per-host spread the job-wide budget divides by."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.dataset import Dataset
from pipeline.download.host_budget import HostBudget, count_spread, plan_host_budget
from pipeline.download.input_shards import prepare_input_shards, read_input_shard
from pipeline.errors import UserInputError
from pipeline.fetch.politeness import host_of
from pipeline.ingest import IngestOptions
from tests.stages import download_options

HOSTS = ("big.test", "a.test", "b.test", "c.test")


def write_list(path: Path, rows: int) -> Path:
    """Rows interleaved over hosts: big.test on every other row, the rest in turn."""
    lines = []
    for i in range(rows):
        host = HOSTS[0] if i % 2 == 0 else HOSTS[1 + (i // 2) % 3]
        lines.append(f"caption {i}\thttp://{host}/{i}.jpg\n")
    path.write_text("".join(lines))
    return path


def shards(dataset: Dataset, count: int) -> list[list[dict]]:
    return [read_input_shard(dataset, s).to_pylist() for s in range(count)]


def test_grouping_keeps_a_hosts_rows_together_and_renumbers_them(tmp_path: Path) -> None:
    listing = IngestOptions(urls=str(write_list(tmp_path / "l.tsv", 50)), batch_size=7)
    plain = Dataset(str(tmp_path / "plain"))
    grouped = Dataset(str(tmp_path / "grouped"))
    assert prepare_input_shards(plain, listing, 5)["shard_count"] == 10
    manifest = prepare_input_shards(grouped, listing, 5, group_hosts=4)
    assert manifest["shard_count"] == 10 and manifest["signature"]["group_hosts"] == 4
    rows = [r for shard in shards(grouped, 10) for r in shard]
    # Every row once, row_index counting the new order (shard k holds rows [5k, 5k + 5)).
    assert [r["row_index"] for r in rows] == list(range(50))
    assert sorted(r["source_row"] for r in rows) == list(range(1, 51))
    # Inside each window of 4 shards (20 rows) a host's rows are adjacent, in list order.
    for start in range(0, 50, 20):
        window = rows[start : start + 20]
        hosts = [host_of(r["url"]) for r in window]
        changes = sum(1 for a, b in zip(hosts, hosts[1:], strict=False) if a != b)
        assert changes == len(set(hosts)) - 1, hosts
        for host in set(hosts):
            order = [r["source_row"] for r in window if host_of(r["url"]) == host]
            assert order == sorted(order)
    # Fewer shards share each host: the divisor of the job-wide budget shrinks.
    spread_plain = count_spread(None, plain, 10, 50)
    spread_grouped = count_spread(None, grouped, 10, 50)
    assert spread_plain["big.test"] == 10 and min(spread_plain.values()) >= 8
    assert spread_grouped == {"big.test": 5, "a.test": 3, "b.test": 4, "c.test": 4}
    # The same list and N give the same shards; another N is another dataset.
    again = prepare_input_shards(grouped, listing, 5, group_hosts=4)
    assert again == manifest
    with pytest.raises(UserInputError, match="different URL list or different ingest options"):
        prepare_input_shards(grouped, listing, 5, group_hosts=2)
    with pytest.raises(UserInputError, match="different URL list or different ingest options"):
        prepare_input_shards(grouped, listing, 5)


def test_without_grouping_the_signature_is_unchanged(tmp_path: Path) -> None:
    listing = IngestOptions(urls=str(write_list(tmp_path / "l.tsv", 5)))
    manifest = prepare_input_shards(Dataset(str(tmp_path / "ds")), listing, 10)
    assert "group_hosts" not in manifest["signature"]


def test_the_plan_counts_the_spread_once(tmp_path: Path) -> None:
    urls = write_list(tmp_path / "l.tsv", 40)
    dataset = Dataset(str(tmp_path / "ds"))
    args = ["--urls", str(urls), "--dataset", dataset.url, "--samples-per-shard", "10"]
    args += ["--concurrent-tasks", "3"]
    options = download_options(args)
    manifest = prepare_input_shards(dataset, options.ingest, 10)
    assert plan_host_budget(None, dataset, manifest, options) is None  # no job-wide budget asked for
    options = download_options([*args, "--host-concurrency", "6", "--per-host-rps", "5"])
    budget = plan_host_budget(None, dataset, manifest, options)
    assert budget == HostBudget(3, dataset.input.host_spread_file)
    recorded = dataset.storage.read_json(*dataset.input.host_spread_file)
    assert recorded == {"shard_count": 4, "hosts": {h: 4 for h in sorted(HOSTS)}}
    share = budget.shares(dataset).for_task(HOSTS)
    assert [share(h) for h in HOSTS] == [3] * 4  # in 4 shards, but only 3 tasks at once
    # A second plan reads the file (its shard count still matches).
    (tmp_path / "ds" / "_input" / "00000.parquet").unlink()
    assert plan_host_budget(None, dataset, manifest, options) == budget
