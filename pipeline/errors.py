"""Failure classes recorded per row; each is a stable string stored in the raw shard parquet."""

from __future__ import annotations

from enum import StrEnum


class ErrorClass(StrEnum):
    """Why a row did not become a sample. Values are stable: they are stored in outputs."""

    # Input rows that cannot be used (found at ingest, never fetched).
    MISSING_URL = "missing_url"
    INVALID_URL = "invalid_url"
    UNSUPPORTED_SCHEME = "unsupported_scheme"
    NON_UTF8_CAPTION = "non_utf8_caption"
    EMPTY_CAPTION = "empty_caption"
    MALFORMED_ROW = "malformed_row"
    DUPLICATE_PAIR = "duplicate_pair"
    DUPLICATE_URL = "duplicate_url"
    # Rows of a list added with --append whose URL the dataset already holds (--append-skip-urls).
    URL_ALREADY_STORED = "url_already_stored"
    URL_ALREADY_FAILED = "url_already_failed"
    # Network.
    DNS_ERROR = "dns_error"
    ADDRESS_REFUSED = "address_refused"
    CONNECT_ERROR = "connect_error"
    TLS_ERROR = "tls_error"
    PROXY_ERROR = "proxy_error"
    CONNECTION_RESET = "connection_reset"
    TIMEOUT = "timeout"
    HTTP_ERROR = "http_error"
    TOO_MANY_REDIRECTS = "too_many_redirects"
    TOO_LARGE = "too_large"
    TRUNCATED = "truncated"
    BAD_CONTENT_TYPE = "bad_content_type"
    OPTED_OUT = "opted_out"
    PROTOCOL_ERROR = "protocol_error"
    # Opt-outs the host declares, and the operator's block lists (docs/download.md, "Opt-outs").
    ROBOTS_DISALLOWED = "robots_disallowed"
    ROBOTS_UNREACHABLE = "robots_unreachable"
    TDM_RESERVED = "tdm_reserved"
    BLOCKED_URL = "blocked_url"
    BLOCKED_DOMAIN = "blocked_domain"
    BLOCKED_SHA256 = "blocked_sha256"
    BLOCKED_PHASH = "blocked_phash"
    # Image.
    UNDECODABLE = "undecodable"
    IMAGE_TOO_LARGE = "image_too_large"
    IMAGE_TOO_SMALL = "image_too_small"
    ASPECT_RATIO = "aspect_ratio"
    ENCODE_ERROR = "encode_error"
    # --verify-hash: the downloaded bytes do not have the digest the URL list gives.
    HASH_MISMATCH = "hash_mismatch"
    # Imported from img2dataset: a failure whose message maps to no class above (kept verbatim).
    IMPORTED_ERROR = "imported_error"
    # A bug or an input no rule foresaw; logged with a traceback, never fatal to the shard.
    UNEXPECTED = "unexpected_error"


INGEST_ERRORS = frozenset(
    {
        ErrorClass.MISSING_URL,
        ErrorClass.INVALID_URL,
        ErrorClass.UNSUPPORTED_SCHEME,
        ErrorClass.NON_UTF8_CAPTION,
        ErrorClass.EMPTY_CAPTION,
        ErrorClass.MALFORMED_ROW,
    }
)


class SampleError(Exception):
    """A per-row failure with its class; caught and recorded, never fatal to the job."""

    def __init__(self, error_class: ErrorClass, message: str, http_status: int | None = None):
        super().__init__(message)
        self.error_class = error_class
        self.message = message
        self.http_status = http_status


class UserInputError(ValueError):
    """Invalid options or unreadable inputs: the job stops before doing any work."""
