"""Shard lists: brace expansion (``{000000..000009}``, ``{a,b}``), ``::``-joined lists, existence."""

from __future__ import annotations

import json
import logging
import re

import fsspec

from pipeline.errors import UserInputError

log = logging.getLogger(__name__)

_RANGE = re.compile(r"^(-?\d+)\.\.(-?\d+)$")


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
    """Bash-style expansion of the first ``{...}`` group, recursively (ranges keep zero padding)."""
    start = pattern.find("{")
    if start < 0:
        return [pattern]
    depth = 0
    for end in range(start, len(pattern)):
        depth += {"{": 1, "}": -1}.get(pattern[end], 0)
        if depth == 0:
            break
    else:
        raise UserInputError(f"unbalanced braces in shard pattern {pattern!r}")
    body, head, tail = pattern[start + 1 : end], pattern[:start], pattern[end + 1 :]
    match = _RANGE.match(body)
    if match:
        first, last = match.group(1), match.group(2)
        width = len(first) if first.lstrip("-").startswith("0") else 0
        step = 1 if int(last) >= int(first) else -1
        choices = [str(i).zfill(width) for i in range(int(first), int(last) + step, step)]
    else:
        choices = _split_top_level(body)
    return [url for choice in choices for url in brace_expand(head + choice + tail)]


def _split_top_level(body: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in body:
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += {"{": 1, "}": -1}.get(ch, 0)
        current += ch
    parts.append(current)
    return parts


def check_shards_exist(urls: list[str], flag: str = "--shards") -> None:
    """Raise ``UserInputError`` naming the missing shards, before any process starts reading."""
    missing = []
    for url in urls:
        fs, path = fsspec.core.url_to_fs(url)
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
