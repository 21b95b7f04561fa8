"""Offline block lists (``--block-list FILE``): URLs, domains, sha256 and pHash values never stored.

One entry a line, ``KIND:VALUE``; blank lines and lines starting with ``#`` are skipped::

    url:https://images.example.org/photo/123.jpg   # this URL (normalised as the list's URLs are)
    domain:example.org                             # this host and every host under it
    sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08   # of the bytes as downloaded
    phash:c3c3e1e0f0f8383c                         # 16 hex digits, the stored image's pHash

URLs and domains are checked before anything is sent (on every redirect hop too: a blocked host
is never contacted, not even for its robots.txt); sha256 and pHash values after the download,
before the image is stored. pHash values match within ``--block-phash-distance`` bits (exact
multi-index search, :class:`pipeline.dedup.hamming.HammingIndex`). The pHash is the one the raw
parquet records (signed there: ``format(phash & (2**64 - 1), "016x")`` gives the hex form).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import fsspec
import numpy as np

from pipeline.errors import ErrorClass, SampleError, UserInputError
from pipeline.uid import normalise_url

KINDS = ("url", "domain", "sha256", "phash")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX16 = re.compile(r"[0-9a-f]{16}")
_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?")


@dataclass(frozen=True)
class BlockList:
    """The entries of every ``--block-list`` file, ready for per-request lookups."""

    urls: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()
    sha256: frozenset[str] = frozenset()
    phashes: tuple[int, ...] = ()
    phash_distance: int = 0
    _index: object = field(default=None, compare=False, repr=False)

    @classmethod
    def load(cls, paths: Sequence[str], phash_distance: int = 0) -> BlockList:
        """Read ``paths`` (any fsspec URLs); ``UserInputError`` naming file and line for a bad entry."""
        entries: dict[str, set[str]] = {kind: set() for kind in KINDS}
        for path in paths:
            try:
                with fsspec.open(path, "rt", encoding="utf-8-sig") as handle:
                    for number, line in enumerate(handle, 1):
                        _add(entries, line.strip(), f"{path}:{number}")
            except (OSError, UnicodeDecodeError) as exc:
                raise UserInputError(f"cannot read --block-list {path}: {exc}") from exc
        phashes = tuple(sorted(int(value, 16) for value in entries["phash"]))
        index = None
        if phashes and phash_distance > 0:
            from pipeline.dedup.hamming import HammingIndex

            index = HammingIndex(np.array(phashes, dtype=np.uint64), phash_distance)
        return cls(
            frozenset(entries["url"]),
            frozenset(entries["domain"]),
            frozenset(entries["sha256"]),
            phashes,
            phash_distance,
            index,
        )

    def __bool__(self) -> bool:
        return bool(self.urls or self.domains or self.sha256 or self.phashes)

    @property
    def checks_urls(self) -> bool:
        return bool(self.urls or self.domains)

    @property
    def checks_content(self) -> bool:
        return bool(self.sha256 or self.phashes)

    def counts(self) -> dict[str, int]:
        """Entries of each kind (for the log)."""
        return {
            "url": len(self.urls),
            "domain": len(self.domains),
            "sha256": len(self.sha256),
            "phash": len(self.phashes),
        }

    def check_url(self, url: str, host: str) -> None:
        """Raise ``SampleError`` (``blocked_url`` / ``blocked_domain``) when ``url`` or ``host`` is listed.

        ``url`` is normalised (as the list's rows and redirect targets are); ``host`` is the
        request's host (lower-case ASCII, as :class:`pipeline.fetch.http11.Target` holds it).
        """
        if url in self.urls:
            raise SampleError(ErrorClass.BLOCKED_URL, f"{url[:200]} is on a --block-list (url entry)")
        if not self.domains:
            return
        if host in self.domains:
            raise SampleError(ErrorClass.BLOCKED_DOMAIN, f"host {host} is on a --block-list (domain {host})")
        if ":" in host or host.replace(".", "").isdigit():
            return  # an IP address: only an exact entry blocks it
        at = host.find(".")
        while at >= 0:
            suffix = host[at + 1 :]
            if suffix in self.domains:
                raise SampleError(
                    ErrorClass.BLOCKED_DOMAIN, f"host {host} is on a --block-list (domain {suffix})"
                )
            at = host.find(".", at + 1)

    def check_content(self, sha256: str, phash: int) -> None:
        """Raise ``SampleError`` (``blocked_sha256`` / ``blocked_phash``) for a listed image."""
        if sha256 in self.sha256:
            raise SampleError(ErrorClass.BLOCKED_SHA256, f"sha256 {sha256} is on a --block-list", 200)
        if not self.phashes:
            return
        if self._index is None:
            if phash in self.phashes:
                raise SampleError(ErrorClass.BLOCKED_PHASH, f"pHash {phash:016x} is on a --block-list", 200)
            return
        _, found, distance = self._index.search(np.array([phash], dtype=np.uint64))  # type: ignore[attr-defined]
        if found.size:
            entry = self.phashes[int(found[0])]
            raise SampleError(
                ErrorClass.BLOCKED_PHASH,
                f"pHash {phash:016x} is within {int(distance[0])} bits of --block-list entry {entry:016x}",
                200,
            )


def _add(entries: dict[str, set[str]], line: str, where: str) -> None:
    if not line or line.startswith("#"):
        return
    kind, colon, value = line.partition(":")
    kind = kind.strip().lower()
    value = value.strip()
    if not colon or kind not in KINDS:
        raise UserInputError(
            f"{where}: a --block-list line is KIND:VALUE with KIND one of {', '.join(KINDS)}, "
            f"got {line[:120]!r}"
        )
    if kind == "url":
        try:
            entries["url"].add(normalise_url(value))
        except SampleError as exc:
            raise UserInputError(f"{where}: bad URL entry: {exc.message}") from exc
    elif kind == "domain":
        entries["domain"].add(_domain(value, where))
    elif kind == "sha256":
        digest = value.lower()
        if not _HEX64.fullmatch(digest):
            raise UserInputError(f"{where}: a sha256 entry is 64 hex digits, got {value[:80]!r}")
        entries["sha256"].add(digest)
    else:
        digits = value.lower().removeprefix("0x")
        if not _HEX16.fullmatch(digits):
            raise UserInputError(f"{where}: a phash entry is 16 hex digits, got {value[:80]!r}")
        entries["phash"].add(digits)


def _domain(value: str, where: str) -> str:
    """A domain entry as request hosts are spelled: lower-case ASCII (IDNA), no leading ``*.``/``.``."""
    name = value.lower().removeprefix("*.").removeprefix(".").removesuffix(".")
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        pass
    try:
        name = name if name.isascii() else name.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise UserInputError(f"{where}: bad domain entry {value[:80]!r}: {exc}") from exc
    if not name or not all(_LABEL.fullmatch(label) for label in name.split(".")):
        raise UserInputError(f"{where}: bad domain entry {value[:80]!r}")
    return name
