"""URL normalisation and the stable per-pair ``uid``."""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit, urlunsplit

from pipeline.errors import ErrorClass, SampleError

ALLOWED_SCHEMES = ("http", "https")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalise_url(raw: str) -> str:
    """Return the canonical form of ``raw`` or raise :class:`SampleError` saying why it is bad.

    Canonical: surrounding white space stripped, scheme and host lower-cased, default port and
    fragment dropped. Path and query are kept byte for byte (servers may treat case as meaningful).
    """
    url = raw.strip()
    if not url:
        raise SampleError(ErrorClass.MISSING_URL, "empty URL")
    if any(c in url for c in "\r\n\t\x00 "):
        raise SampleError(
            ErrorClass.INVALID_URL, f"URL contains white space or control characters: {url[:200]!r}"
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise SampleError(ErrorClass.INVALID_URL, f"cannot parse URL {url[:200]!r}: {exc}") from exc
    scheme = parts.scheme.lower()
    if not scheme or "://" not in url:
        raise SampleError(ErrorClass.INVALID_URL, f"URL has no scheme://host: {url[:200]!r}")
    if scheme not in ALLOWED_SCHEMES:
        raise SampleError(ErrorClass.UNSUPPORTED_SCHEME, f"only http and https are fetched, not {scheme!r}")
    host = (parts.hostname or "").lower()
    if not host:
        raise SampleError(ErrorClass.INVALID_URL, f"URL has no host: {url[:200]!r}")
    netloc = f"[{host}]" if ":" in host else host
    if parts.username or parts.password:
        raise SampleError(ErrorClass.INVALID_URL, "URLs with credentials are not fetched")
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc = f"{netloc}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def make_uid(url: str, caption: str | None) -> str:
    """Stable 32-hex-digit id of a (normalised URL, caption) pair. Dot-free by construction."""
    h = hashlib.blake2b(digest_size=16)
    h.update(url.encode("utf-8", "surrogatepass"))
    h.update(b"\x00")
    h.update((caption or "").encode("utf-8", "surrogatepass"))
    return h.hexdigest()
