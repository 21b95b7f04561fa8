"""One storage layer for every stage: names, atomic writes, leftovers of dead writers."""

from __future__ import annotations

import pickle
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.storage import TEMP_MARK, Storage, storage_url


def test_paths_and_display_name_what_the_user_gave(tmp_path: Path) -> None:
    storage = Storage(str(tmp_path))
    assert storage.path("raw", "00000.tar") == f"{tmp_path}/raw/00000.tar"
    assert storage.display("raw") == f"{tmp_path}/raw"
    memory = Storage("memory://bucket/data")
    shown = memory.display("raw", "x")
    assert shown.startswith("memory://") and shown.endswith("bucket/data/raw/x")
    # What a message shows can be given back as a URL and names the same file.
    assert Storage(shown).path() == memory.path("raw", "x")
    assert memory.child("raw").display("x") == shown


def test_storage_pickles_by_url(tmp_path: Path) -> None:
    storage = Storage(str(tmp_path))
    storage.write_json({"a": 1}, "x.json")
    copy = pickle.loads(pickle.dumps(storage))
    assert copy.read_json("x.json") == {"a": 1}


def test_writes_are_atomic_and_json_is_byte_stable(tmp_path: Path) -> None:
    storage = Storage(str(tmp_path))
    storage.write_json({"b": 2, "a": [1, 2]}, "sub", "x.json")
    first = (tmp_path / "sub" / "x.json").read_bytes()
    storage.write_json({"a": [1, 2], "b": 2}, "sub", "x.json")
    assert (tmp_path / "sub" / "x.json").read_bytes() == first
    with pytest.raises(ValueError, match="boom"), storage.atomic("sub", "y.bin") as handle:
        handle.write(b"partial")
        raise ValueError("boom")
    # The failed write left neither the file nor its temporary.
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["x.json"]


def test_parquet_round_trip_and_folder_listing(tmp_path: Path) -> None:
    storage = Storage(str(tmp_path))
    storage.write_parquet(pa.table({"x": [1, 2]}), "t", "a.parquet")
    storage.write_bytes(b"1", "t", "b.bin")
    assert pq.read_table(tmp_path / "t" / "a.parquet").column("x").to_pylist() == [1, 2]
    assert storage.names("t") == ["a.parquet", "b.bin"]
    assert storage.names("missing") == []
    assert storage.read_json_if_exists("missing.json") is None


def test_temporaries_of_dead_writers_are_removed(tmp_path: Path) -> None:
    storage = Storage(str(tmp_path))
    storage.write_bytes(b"kept", "raw", "00000.tar")
    temp = storage.temp_name(storage.path("raw", "00001.tar"))
    Path(temp).write_bytes(b"half-written by a killed task")
    assert Path(temp).name.startswith(".") and TEMP_MARK in temp
    assert storage.temp_name(storage.path("raw", "00001.tar")) != temp  # every writer its own
    assert storage.remove_temporaries("raw") == 1
    assert storage.names("raw") == ["00000.tar"]


def test_remove_deletes_folders_and_ignores_missing_ones(tmp_path: Path) -> None:
    storage = Storage(str(tmp_path))
    storage.write_bytes(b"1", "a", "b", "c.bin")
    storage.remove("a")
    storage.remove("a")
    assert not (tmp_path / "a").exists()


def test_a_path_option_without_its_file_system_package_is_refused_at_once(capsys) -> None:
    from tests.stages import download_options

    assert storage_url("s3://bucket/data") == "s3://bucket/data"  # s3fs is a dev dependency
    assert storage_url("/local/data") == "/local/data"
    with pytest.raises(ValueError, match=r"gcs:// file system is not installed.*gcsfs"):
        storage_url("gcs://bucket/data")
    with pytest.raises(ValueError, match="unknown file system 'nosuch'"):
        storage_url("nosuch://bucket/data")
    # On the command line the message names the option, before any Spark work.
    with pytest.raises(SystemExit):
        download_options(["--urls", "list.parquet", "--dataset", "gcs://bucket/data"])
    refusal = "--dataset: 'gcs://bucket/data': the gcs:// file system is not installed"
    assert refusal in capsys.readouterr().err


def test_storage_on_a_real_s3_server_writes_atomically_and_sees_others_writes(s3) -> None:
    storage = Storage(s3.url("dataset"))
    assert storage.display("raw", "00000.tar") == s3.url("dataset", "raw", "00000.tar")
    assert storage.names("raw") == [] and not storage.exists("raw", "00000.tar")
    storage.write_bytes(b"tar bytes", "raw", "00000.tar")
    storage.write_json({"shard": 0}, "raw", "00000.done.json")
    assert storage.read_bytes("raw", "00000.tar") == b"tar bytes"
    # Another writer (an executor, another job) adds a file: this process's listing shows it.
    s3.fs.pipe(f"{s3.name}/dataset/raw/00001.tar", b"other")
    assert storage.names("raw") == ["00000.done.json", "00000.tar", "00001.tar"]
    assert storage.exists("raw", "00001.tar")
    # A failed write leaves nothing behind, not even its temporary.
    with pytest.raises(ValueError, match="boom"), storage.atomic("raw", "00002.tar") as handle:
        handle.write(b"partial")
        raise ValueError("boom")
    assert storage.names("raw") == ["00000.done.json", "00000.tar", "00001.tar"]
    # A dead writer's temporary is removed; complete objects stay.
    s3.fs.pipe(f"{s3.name}/dataset/raw/.00003.tar{TEMP_MARK}abc", b"half")
    assert storage.remove_temporaries("raw") == 1
    assert storage.names("raw") == ["00000.done.json", "00000.tar", "00001.tar"]
    storage.remove("raw")
    assert storage.names("raw") == []
