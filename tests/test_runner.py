"""The shard runner: skip what is complete for the same inputs, temporary names, marker last."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.runner import FINGERPRINT_KEY, ShardOutput, completed, fingerprint, marker_token, run_shard
from pipeline.storage import TEMP_MARK, Storage

OUTPUT = ShardOutput(files=(("out", "a.bin"), ("out", "b.bin")), marker=("out", "a_stats.json"))


def _writer(calls: list[str], payload: bytes = b"data") -> Any:
    def work(commit: Any) -> dict[str, Any]:
        calls.append("work")
        commit.write_bytes(payload, "out", "a.bin")
        commit.write_bytes(payload * 2, "out", "b.bin")
        return {"count": 2}

    return work


def test_fingerprint_is_stable_and_order_free() -> None:
    assert fingerprint(a=1, b=[1, 2]) == fingerprint(b=[1, 2], a=1)
    assert fingerprint(a=1) != fingerprint(a=2)


def test_a_unit_is_written_once_and_skipped_for_the_same_inputs(tmp_path: Path) -> None:
    storage = Storage(str(tmp_path))
    calls: list[str] = []
    first = run_shard(storage, OUTPUT, "inputs-1", _writer(calls))
    assert first["resumed"] is False and first["count"] == 2 and first[FINGERPRINT_KEY] == "inputs-1"
    assert (tmp_path / "out" / "a.bin").read_bytes() == b"data"
    marker = json.loads((tmp_path / "out" / "a_stats.json").read_text())
    assert marker["count"] == 2 and "resumed" not in marker
    again = run_shard(storage, OUTPUT, "inputs-1", _writer(calls))
    assert again["resumed"] is True and calls == ["work"]
    # Other inputs: the unit is redone, and its token (what downstream stages depend on) changes.
    token = marker_token(storage, OUTPUT.marker)
    redone = run_shard(storage, OUTPUT, "inputs-2", _writer(calls, b"new"))
    assert redone["resumed"] is False and calls == ["work", "work"]
    assert (tmp_path / "out" / "a.bin").read_bytes() == b"new"
    assert marker_token(storage, OUTPUT.marker) != token


def test_a_marker_without_its_files_is_not_complete(tmp_path: Path) -> None:
    storage = Storage(str(tmp_path))
    run_shard(storage, OUTPUT, "x", _writer([]))
    (tmp_path / "out" / "b.bin").unlink()
    assert completed(storage, OUTPUT, "x") is None
    calls: list[str] = []
    assert run_shard(storage, OUTPUT, "x", _writer(calls))["resumed"] is False and calls == ["work"]


def test_a_failed_unit_leaves_no_file_and_no_marker(tmp_path: Path) -> None:
    storage = Storage(str(tmp_path))

    def broken(commit: Any) -> dict[str, Any]:
        commit.write_bytes(b"half", "out", "a.bin")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="killed mid-write"):
        run_shard(storage, OUTPUT, "x", broken)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []


def test_work_must_write_every_declared_file(tmp_path: Path) -> None:
    storage = Storage(str(tmp_path))

    def lazy(commit: Any) -> dict[str, Any]:
        commit.write_bytes(b"only one", "out", "a.bin")
        return {}

    with pytest.raises(RuntimeError, match="without writing.*b.bin"):
        run_shard(storage, OUTPUT, "x", lazy)
    assert not (tmp_path / "out" / "a_stats.json").exists()
    assert not (tmp_path / "out" / "a.bin").exists()


def test_undeclared_files_are_refused(tmp_path: Path) -> None:
    def stray(commit: Any) -> dict[str, Any]:
        commit.write_bytes(b"?", "out", "c.bin")
        return {}

    with pytest.raises(KeyError, match="c.bin is not an output"):
        run_shard(Storage(str(tmp_path)), OUTPUT, "x", stray)


def test_files_are_written_under_hidden_temporary_names_until_commit(tmp_path: Path) -> None:
    seen: list[list[str]] = []

    def work(commit: Any) -> dict[str, Any]:
        commit.write_bytes(b"1", "out", "a.bin")
        commit.write_bytes(b"2", "out", "b.bin")
        seen.append(sorted(p.name for p in (tmp_path / "out").iterdir()))
        return {}

    run_shard(Storage(str(tmp_path)), OUTPUT, "x", work)
    assert len(seen[0]) == 2 and all(name.startswith(".") and TEMP_MARK in name for name in seen[0])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.bin", "a_stats.json", "b.bin"]


def test_legacy_markers_count_only_where_the_stage_accepts_them(tmp_path: Path) -> None:
    storage = Storage(str(tmp_path))
    (tmp_path / "out").mkdir()
    for name in ("a.bin", "b.bin"):
        (tmp_path / "out" / name).write_bytes(b"old")
    (tmp_path / "out" / "a_stats.json").write_text(json.dumps({"count": 2}))  # no fingerprint
    assert completed(storage, OUTPUT, "x") is None
    assert completed(storage, OUTPUT, "x", accept_legacy=True) == {"count": 2}
    # A marker that names other inputs is never legacy.
    (tmp_path / "out" / "a_stats.json").write_text(json.dumps({"count": 2, FINGERPRINT_KEY: "y"}))
    assert completed(storage, OUTPUT, "x", accept_legacy=True) is None
