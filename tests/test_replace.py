"""Replacing a committed unit: a kill at any moment leaves the old unit or (rolled forward) the new one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pipeline.replace import ShardReplace, journal_parts, pending_journals, roll_forward
from pipeline.runner import ShardOutput, completed, run_shard
from pipeline.storage import Storage

OUTPUT = ShardOutput(files=(("u", "00000.tar"), ("u", "00000.parquet")), marker=("u", "00000_stats.json"))
KILLED = 17


def commit_old(storage: Storage) -> None:
    def work(commit: Any) -> dict[str, Any]:
        commit.write_bytes(b"old tar", *OUTPUT.files[0])
        commit.write_bytes(b"old parquet", *OUTPUT.files[1])
        return {"version": "old"}

    run_shard(storage, OUTPUT, "fp", work)


def replace(storage: Storage) -> None:
    replacement = ShardReplace(storage, OUTPUT)
    replacement.write_bytes(b"new tar, longer", *OUTPUT.files[0])
    replacement.write_bytes(b"new parquet, longer", *OUTPUT.files[1])
    replacement.commit({"version": "new", "fingerprint": "fp"})


def state(storage: Storage) -> str | None:
    """``old``/``new`` when the marker vouches for a unit whose files all match it; None without one."""
    marker = completed(storage, OUTPUT, "fp")
    if marker is None:
        return None
    version = marker["version"]
    contents = [storage.read_bytes(*parts) for parts in OUTPUT.files]
    assert all(c.startswith(version.encode()) for c in contents), (version, contents)  # never a mix
    return version


def killed_after(storage: Storage, calls: int) -> int:
    """Run :func:`replace` in a child process that dies (no clean-up) at its ``calls``-th file
    system write, rename or delete; the child's exit status (0: it finished)."""
    pid = os.fork()
    if pid == 0:  # the child: only file operations, then _exit
        count = 0

        def dying(method: Any) -> Any:
            def wrapped(*args: Any, **kwargs: Any) -> Any:
                nonlocal count
                mode = args[1] if len(args) > 1 else kwargs.get("mode", "rb")
                if method.__name__ != "open" or "w" in mode:
                    count += 1
                    if count > calls:
                        os._exit(KILLED)
                return method(*args, **kwargs)

            return wrapped

        try:
            for name in ("open", "mv", "rm"):
                setattr(storage.fs, name, dying(getattr(storage.fs, name)))
            replace(storage)
        except BaseException:  # noqa: BLE001 - the child reports by exit status only
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_a_kill_at_any_moment_leaves_the_old_unit_or_the_new_one(tmp_path: Path) -> None:
    outcomes = []
    for calls in range(40):
        storage = Storage(str(tmp_path / f"kill{calls}"))
        commit_old(storage)
        code = killed_after(storage, calls)
        assert code in (0, KILLED)
        journal = storage.exists(*journal_parts(OUTPUT))
        seen = state(storage)  # what a reader (score, build_shards) sees now
        assert seen in ("old", "new") or (seen is None and journal)  # no marker only while a journal waits
        # The next download run: journals first, then dead writers' temporaries.
        rolled = roll_forward(storage, OUTPUT)
        storage.remove_temporaries("u")
        final = state(storage)
        assert final == ("new" if journal or code == 0 else "old")
        assert rolled == journal
        assert sorted(storage.names("u")) == ["00000.parquet", "00000.tar", "00000_stats.json"]
        outcomes.append(final)
        if code == 0:
            break
    else:
        pytest.fail("the replacement never finished within 40 file operations")
    assert "old" in outcomes and "new" in outcomes  # kills before and after the commit point
    # A unit left old is replaced by the next attempt.
    storage = Storage(str(tmp_path / "kill0"))
    replace(storage)
    assert state(storage) == "new" and not pending_journals(storage, "u")


def test_a_journal_whose_temporary_was_lost_is_refused(tmp_path: Path) -> None:
    storage = Storage(str(tmp_path / "lost"))
    commit_old(storage)
    replacement = ShardReplace(storage, OUTPUT)
    replacement.write_bytes(b"new tar, longer", *OUTPUT.files[0])
    replacement.write_bytes(b"new parquet, longer", *OUTPUT.files[1])
    files = [[replacement.temp(*p).rsplit("/", 1)[-1], len(b"new tar, longer"), *p] for p in OUTPUT.files[:1]]
    storage.write_json({"files": files, "marker": {"version": "new"}}, *journal_parts(OUTPUT))
    storage.remove_temporaries("u")  # what must never happen before a roll forward
    with pytest.raises(RuntimeError, match="cannot be finished"):
        roll_forward(storage, OUTPUT)


class FailingRenames(Storage):
    """A storage whose renames fail after ``allowed`` of them (a writer that died mid-way)."""

    allowed = 1

    def rename(self, source: str, final: str) -> None:
        if self.allowed <= 0:
            raise OSError("the writer died here")
        self.allowed -= 1
        super().rename(source, final)


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_replacement_interrupted_after_its_journal_is_rolled_forward(
    where: str, tmp_path: Path, request
) -> None:
    url = str(tmp_path / "ds") if where == "local" else request.getfixturevalue("s3").url("ds")
    commit_old(Storage(url))
    dying = FailingRenames(url)  # the journal's own atomic write is its one rename
    with pytest.raises(OSError, match="died"):
        replace(dying)
    storage = Storage(url)
    assert state(storage) is None and pending_journals(storage, "u") == [".00000_replace.json"]
    assert roll_forward(storage, OUTPUT) and state(storage) == "new"
    storage.remove_temporaries("u")
    assert storage.names("u") == ["00000.parquet", "00000.tar", "00000_stats.json"]
