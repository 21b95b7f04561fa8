"""The local cache of remote inputs, against a real S3 server: hits, changes, damage, concurrency."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pipeline.errors import UserInputError
from pipeline.remote_cache import MANIFEST, stage


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("CORPUSFORGE_CACHE", str(folder))
    return folder


def downloads(caplog: pytest.LogCaptureFixture) -> int:
    return sum("staged to" in record.getMessage() for record in caplog.records)


def test_a_file_is_staged_once_and_again_when_it_changes(s3, cache: Path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="pipeline.remote_cache")
    url = s3.url("models", "weights.pt")
    s3.fs.pipe_file(url, b"version one")
    first = stage(url, "--pretrained")
    assert first.name == "weights.pt" and first.read_bytes() == b"version one"
    assert stage(url, "--pretrained") == first and downloads(caplog) == 1  # a cache hit
    s3.fs.pipe_file(url, b"version two, longer")
    second = stage(url, "--pretrained")
    assert second != first and second.read_bytes() == b"version two, longer" and downloads(caplog) == 2
    assert not first.exists()  # the older version is gone
    s3.fs.pipe_file(url, b"version 3, longer")  # same size, other ETag
    assert stage(url, "--pretrained").read_bytes() == b"version 3, longer" and downloads(caplog) == 3


def test_a_damaged_local_copy_is_staged_again(s3, cache: Path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="pipeline.remote_cache")
    url = s3.url("weights.pt")
    s3.fs.pipe_file(url, b"the real bytes")
    path = stage(url)
    path.write_bytes(b"the fake bytes")  # same size: only the sha256 tells
    assert stage(url).read_bytes() == b"the real bytes" and downloads(caplog) == 2
    (path.parent / MANIFEST).unlink()
    assert stage(url).read_bytes() == b"the real bytes" and downloads(caplog) == 3
    dead = path.parent.parent / ".tmp-0123456789ab"  # a copy whose process was killed
    (dead / "weights.pt").parent.mkdir()
    (dead / "weights.pt").write_bytes(b"the re")
    assert stage(url).read_bytes() == b"the real bytes" and downloads(caplog) == 3 and not dead.exists()


def test_a_folder_staged_by_many_threads_at_once_is_downloaded_once(s3, cache: Path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="pipeline.remote_cache")
    files = {"a/1.jpg": b"one", "a/2.jpg": b"two", "b/deeper/3.jpg": b"three", "world.json": b"{}"}
    for name, data in files.items():
        s3.fs.pipe_file(s3.url("eval", "set", name), data)
    with ThreadPoolExecutor(4) as pool:
        paths = list(pool.map(lambda _: stage(s3.url("eval", "set"), "--zeroshot-dir"), range(4)))
    assert len(set(paths)) == 1 and paths[0].name == "set" and downloads(caplog) == 1
    assert {
        p.relative_to(paths[0]).as_posix(): p.read_bytes() for p in paths[0].rglob("*") if p.is_file()
    } == files
    assert not [p for p in paths[0].parent.parent.iterdir() if p.name.startswith(".tmp-")]
    s3.fs.rm(s3.url("eval", "set", "a", "2.jpg"))
    changed = stage(s3.url("eval", "set"), "--zeroshot-dir")
    assert not (changed / "a" / "2.jpg").exists() and (changed / "a" / "1.jpg").read_bytes() == b"one"


def test_local_paths_pass_and_bad_urls_are_clear_errors(s3, cache: Path, tmp_path: Path) -> None:
    assert stage(str(tmp_path / "x.pt")) == tmp_path / "x.pt"
    assert stage(f"file://{tmp_path}/x.pt") == tmp_path / "x.pt"
    with pytest.raises(UserInputError, match=r"--pretrained s3://.*/missing\.pt: no such file or folder"):
        stage(s3.url("missing.pt"), "--pretrained")
    with pytest.raises(UserInputError, match="abfs:// file system is not installed"):
        stage("abfs://container/x.pt", "--pretrained")
    assert not list(cache.rglob("*.pt"))
