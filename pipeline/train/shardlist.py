"""Shard lists: brace expansion as bash does it (``braceexpand``), ``::``-joined lists, existence."""

from __future__ import annotations

import json
import logging

import fsspec
from braceexpand import UnbalancedBracesError, braceexpand

from pipeline.errors import UserInputError

log = logging.getLogger(__name__)


def expand_shards(spec: str) -> list[str]:
    """Every shard URL of ``spec``: ``::``-separated parts, each brace-expanded, in order."""
    urls: list[str] = []
    for part in spec.split("::"):
        part = part.strip()
        if part:
            urls.extend(brace_expand(part))
    if not urls:
        raise UserInputError(f"shard list {spec!r} names no shard")
    return urls


def brace_expand(pattern: str) -> list[str]:
    """Bash-style brace expansion: ``{a,b}``, ranges ``{000..009}`` (zero padding kept) and steps
    ``{0..10..2}``, nested groups included."""
    try:
        return list(braceexpand(pattern))
    except UnbalancedBracesError as exc:
        raise UserInputError(f"unbalanced braces in shard pattern {pattern!r}") from exc


def check_shards_exist(urls: list[str], flag: str = "--shards") -> None:
    """Raise ``UserInputError`` naming the missing shards, before any process starts reading."""
    missing = []
    for url in urls:
        fs, path = fsspec.core.url_to_fs(url)
        fs.invalidate_cache(path)  # object stores: a listing this process cached may predate the shards
        if not fs.isfile(path):
            missing.append(url)
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise UserInputError(f"{flag}: {len(missing)} of {len(urls)} shards not found: {shown}")


def shard_sizes(urls: list[str]) -> dict[str, int]:
    """Sample counts from the ``sizes.json`` files next to the shards (shard name -> count), if any."""
    sizes: dict[str, int] = {}
    folders = sorted({url.rsplit("/", 1)[0] for url in urls if "/" in url})
    for folder in folders:
        fs, path = fsspec.core.url_to_fs(f"{folder}/sizes.json")
        fs.invalidate_cache(path)
        if not fs.isfile(path):
            continue
        try:
            with fs.open(path, "rb") as handle:
                table = json.load(handle)
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable %s/sizes.json: %s", folder, exc)
            continue
        for url in urls:
            if url.rsplit("/", 1)[0] == folder and url.rsplit("/", 1)[-1] in table:
                sizes[url] = int(table[url.rsplit("/", 1)[-1]])
    return sizes
