"""Remote inputs (a model file, an evaluation folder) staged to a local cache before use.

open_clip, PIL and pyarrow want local files, so ``--pretrained s3://...``, ``--eval-world gs://...``
and ``--zeroshot-dir hdfs://...`` are first copied to ``$CORPUSFORGE_CACHE`` (default
``~/.cache/corpusforge/remote``; the system temporary folder when that is not writable, as on
some cluster executors)::

    CACHE/KEY/VERSION/NAME          the file, or the folder with everything under it
    CACHE/KEY/VERSION/.manifest.json  size and sha256 of every file, written before the rename
    CACHE/KEY/.lock                  held while one process checks or stages KEY

``KEY`` is a digest of the URL, ``VERSION`` a digest of what the store says about every file
(name, size and ETag, else MD5 or modification time). A changed remote object has another
version and is staged again (the older version is then deleted); an unchanged one is a cache hit
once the local copy still has the recorded sizes and sha256 digests. Downloads go to a temporary
folder that is renamed into place complete, and an S3 ETag that is a plain MD5 is checked, so
processes sharing a machine (Spark executors, training ranks) never see a half copy, and the
lock makes them download it once.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.errors import UserInputError
from pipeline.remote import is_local, local_path, url_to_fs

log = logging.getLogger(__name__)

CACHE_ENV = "CORPUSFORGE_CACHE"
MANIFEST = ".manifest.json"
_PLAIN_MD5 = re.compile(r"^[0-9a-f]{32}$")
_CHUNK = 8 << 20


def cache_root() -> Path:
    """``$CORPUSFORGE_CACHE``, else ``~/.cache/corpusforge/remote``, else a folder in the temp dir."""
    configured = os.environ.get(CACHE_ENV)
    candidates = [Path(configured)] if configured else []
    candidates += [Path.home() / ".cache" / "corpusforge" / "remote"]
    candidates += [Path(tempfile.gettempdir()) / f"corpusforge-cache-{os.getuid()}"]
    for candidate in candidates:
        try:
            candidate.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(candidate, os.W_OK):
            return candidate
    raise UserInputError(f"no writable cache folder for remote inputs (tried {candidates}); set ${CACHE_ENV}")


def stage(url: str, flag: str = "path") -> Path:
    """A local path with the contents of ``url`` (a file or a folder); local paths are returned as
    they are. ``flag`` names the option in error messages."""
    if is_local(url):
        return local_path(url)
    fs, root = url_to_fs(url, flag)
    root = root.rstrip("/")
    entries = _listing(fs, root, url, flag)
    version = _digest(json.dumps(entries, sort_keys=True))
    home = cache_root() / _digest(url)
    home.mkdir(parents=True, exist_ok=True)
    name = root.rsplit("/", 1)[-1] or "root"
    target = home / version
    with _locked(home / ".lock"):
        for stale in home.glob(".tmp-*"):  # left by a killed process: copies happen under the lock
            shutil.rmtree(stale, ignore_errors=True)
        if target.is_dir() and _intact(target):
            log.info("%s %s: cached copy %s", flag, url, target / name)
            return target / name
        if target.exists():
            log.warning("%s %s: cached copy %s is damaged, staging it again", flag, url, target)
            shutil.rmtree(target)
        _download(fs, root, entries, home, target, name, url, flag)
        for old in home.iterdir():
            if old.name not in (target.name, ".lock"):
                shutil.rmtree(old, ignore_errors=True)  # an older version of the remote object
    log.info("%s %s: staged to %s", flag, url, target / name)
    return target / name


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def _listing(fs: Any, root: str, url: str, flag: str) -> list[dict[str, Any]]:
    """Every file under ``root`` (or ``root`` itself): relative name, size and version stamp."""
    fs.invalidate_cache(root)
    try:
        if fs.isdir(root):
            found = fs.find(root, detail=True)
            entries = [
                _entry(path[len(root) + 1 :], info)
                for path, info in sorted(found.items())
                if info.get("type", "file") == "file"
            ]
            if not entries:
                raise UserInputError(f"{flag} {url}: an empty folder")
            return entries
        if fs.isfile(root):
            return [_entry("", fs.info(root))]
    except OSError as exc:
        raise UserInputError(f"{flag} {url}: cannot be read ({type(exc).__name__}: {exc})") from exc
    raise UserInputError(f"{flag} {url}: no such file or folder")


def _entry(relative: str, info: dict[str, Any]) -> dict[str, Any]:
    return {"name": relative, "size": int(info.get("size") or 0), "stamp": _stamp(info)}


def _stamp(info: dict[str, Any]) -> str:
    """What changes when the object changes: ETag (S3), MD5 (GCS, Azure), else modification time."""
    for key in ("ETag", "etag", "md5Hash", "content_md5", "checksum"):
        if info.get(key):
            return f"{key}:{str(info[key]).strip(chr(34))}"
    for key in ("mtime", "LastModified", "last_modified", "updated", "modified", "created"):
        value = info.get(key)
        if isinstance(value, datetime.datetime):
            return f"time:{value.timestamp()}"
        if value:
            return f"time:{value}"
    return ""


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _intact(target: Path) -> bool:
    """True when every file of the staged copy still has its recorded size and sha256."""
    try:
        manifest = json.loads((target / MANIFEST).read_text())
        for relative, expected in manifest["files"].items():
            path = target / relative
            if path.stat().st_size != expected["size"] or _sha256(path) != expected["sha256"]:
                return False
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return True


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _download(
    fs: Any,
    root: str,
    entries: list[dict[str, Any]],
    home: Path,
    target: Path,
    name: str,
    url: str,
    flag: str,
) -> None:
    temp = home / f".tmp-{uuid.uuid4().hex[:12]}"
    temp.mkdir()
    try:
        files = {}
        for entry in entries:
            relative = f"{name}/{entry['name']}" if entry["name"] else name
            source = f"{root}/{entry['name']}" if entry["name"] else root
            files[relative] = _copy(fs, source, temp / relative, entry, f"{flag} {url}")
        (temp / MANIFEST).write_text(json.dumps({"url": url, "files": files}, indent=2, sort_keys=True))
        os.rename(temp, target)
    finally:
        if temp.exists():
            shutil.rmtree(temp, ignore_errors=True)


def _copy(fs: Any, source: str, dest: Path, entry: dict[str, Any], what: str) -> dict[str, Any]:
    """Copy one remote file; check its size (and MD5 when the ETag is one); its size and sha256."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    sha, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
    try:
        with fs.open(source, "rb") as remote, open(dest, "wb") as local:
            while chunk := remote.read(_CHUNK):
                sha.update(chunk)
                md5.update(chunk)
                size += len(chunk)
                local.write(chunk)
    except OSError as exc:
        raise UserInputError(f"{what}: cannot copy {source} ({type(exc).__name__}: {exc})") from exc
    if size != entry["size"]:
        raise UserInputError(
            f"{what}: {source} changed while it was copied ({size} bytes, not {entry['size']})"
        )
    etag = entry["stamp"].partition(":")[2].lower()
    if entry["stamp"].lower().startswith("etag:") and _PLAIN_MD5.match(etag) and md5.hexdigest() != etag:
        raise UserInputError(f"{what}: {source} arrived damaged (MD5 {md5.hexdigest()}, ETag {etag})")
    return {"size": size, "sha256": sha.hexdigest()}
