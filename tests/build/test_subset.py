"""build_shards --include-uids / --exclude-uids on the scored dataset, with Spark (library call)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from pipeline.build.uid_lists import write_uid_list
from pipeline.errors import UserInputError
from tests.build.conftest import build_options, raw_rows, read_json, scores
from tests.build.expected import check_final, plant_matches
from tests.stages import build as run
from tests.stages import check_inputs

UNKNOWN = ["0" * 31 + "1", "0" * 31 + "2"]


def test_include_and_exclude_lists(spark, dataset: Path, tmp_path: Path) -> None:
    planted = plant_matches(dataset)
    rows, score = raw_rows(dataset), scores(dataset)
    uids = sorted(rows)
    include = uids[::2] + UNKNOWN + [u for u, (r, _) in planted.items() if r == "benchmark_duplicate"]
    exclude = include[1:4] + uids[1:4:2]  # three listed ones, two that are not listed anyway
    # The include list as DataComp builds a subset file, the exclude list as text.
    include_file, exclude_file = tmp_path / "include.npy", tmp_path / "exclude.txt"
    pairs = np.array([(int(u[:16], 16), int(u[16:32], 16)) for u in include], np.dtype("u8,u8"))
    pairs.sort()
    np.save(include_file, pairs)
    write_uid_list(exclude, str(exclude_file))
    args = ["--include-uids", str(include_file), "--exclude-uids", str(exclude_file)]
    options = build_options(dataset, *args, "--top-fraction", "0.5", "--samples-per-shard", "4")
    summary = run(spark, options)

    # The documented order, and the top half ranked among the subset's scored samples.
    pool = [u for u in uids if u in include and u not in exclude]
    ranked = sorted(pool, key=lambda u: (-score[u], u))
    top = set(ranked[: math.ceil(0.5 * len(ranked))])
    expected: dict[str, str | None] = {}
    for uid in uids:
        dedup = planted.get(uid, (None, None))[0]
        checks = [
            ("benchmark_duplicate", dedup == "benchmark_duplicate"),
            ("not_in_include_list", uid not in include),
            ("in_exclude_list", uid in exclude),
            (dedup, dedup in ("exact_duplicate", "near_duplicate")),
            ("below_top_fraction", uid not in top),
        ]
        expected[uid] = next((name for name, failed in checks if failed), None)
    check_final(dataset, expected, seed=0, per_shard=4)  # exactly these samples, and every record's reason
    assert {r for r in expected.values()} >= {"benchmark_duplicate", "not_in_include_list", "in_exclude_list"}
    assert list(summary["dropped"])[:4] == [
        "benchmark_duplicate",
        "not_in_include_list",
        "in_exclude_list",
        "exact_duplicate",
    ]
    listed = len(set(include))
    assert summary["subset"]["include_uids"] == {
        "file": str(include_file),
        "sha256": summary["subset"]["include_uids"]["sha256"],
        "listed": listed,
        "matched": listed - 2,
        "unknown": 2,
        "unknown_examples": UNKNOWN,
    }
    assert summary["subset"]["exclude_uids"]["matched"] == 5 == summary["subset"]["exclude_uids"]["listed"]
    assert any(f"2 of {listed} uids of --include-uids" in w and UNKNOWN[0] in w for w in summary["warnings"])
    manifest = read_json(dataset / "final" / "manifest.json")
    assert manifest["selection"]["include_uids"]["unknown"] == 2
    assert manifest["selection"]["exclude_uids"]["sha256"] == summary["subset"]["exclude_uids"]["sha256"]

    # Same lists (the exclude list moved): finished, nothing to do. An edited list: refused.
    moved = tmp_path / "moved.txt"
    moved.write_bytes(exclude_file.read_bytes())
    again = build_options(
        dataset,
        "--include-uids",
        str(include_file),
        "--exclude-uids",
        str(moved),
        "--top-fraction",
        "0.5",
        "--samples-per-shard",
        "4",
    )
    assert run(spark, again)["shards_resumed"] == summary["shards"]
    write_uid_list(exclude[:-1], str(moved))
    with pytest.raises(UserInputError, match="built with other options: exclude_uids"):
        check_inputs("build", again)
    without = build_options(
        dataset, "--include-uids", str(include_file), "--top-fraction", "0.5", "--samples-per-shard", "4"
    )
    with pytest.raises(UserInputError, match="built with other options: exclude_uids"):
        check_inputs("build", without)


def test_an_empty_include_list_is_refused(spark, dataset: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing selected\n")
    with pytest.raises(UserInputError, match=r"--include-uids .*empty.txt lists no uid: it would drop every"):
        run(spark, build_options(dataset, "--include-uids", str(empty)))
    with pytest.raises(UserInputError, match=r"--exclude-uids .*gone.txt: no such file"):
        check_inputs("build", build_options(dataset, "--exclude-uids", str(tmp_path / "gone.txt")))
