"""img2dataset's outcome of a row (``status`` and the exception text in ``error_message``) as
one of our failure classes (docs/import.md has the table).

img2dataset keeps ``str(exception)`` of urllib, http.client, ssl and OpenCV, or its own short
messages. A text no rule recognises becomes ``imported_error``, message kept verbatim.
"""

from __future__ import annotations

import re

from pipeline.errors import ErrorClass

_HTTP = re.compile(r"HTTP Error (\d{3})")
# (class, any of these substrings, compared in lower case), first match wins: specific first.
_RULES: tuple[tuple[ErrorClass, tuple[str, ...]], ...] = (
    (ErrorClass.HASH_MISMATCH, ("hash mismatch",)),
    (ErrorClass.OPTED_OUT, ("x-robots-tag",)),
    (
        ErrorClass.TOO_MANY_REDIRECTS,
        ("redirect error that would lead to an infinite loop", "too many redirects"),
    ),
    (ErrorClass.IMAGE_TOO_SMALL, ("image too small",)),
    (ErrorClass.IMAGE_TOO_LARGE, ("image area too large", "cv_io_max_image_pixels", "decompressionbomb")),
    (ErrorClass.ASPECT_RATIO, ("aspect ratio too large",)),
    (ErrorClass.UNDECODABLE, ("image decoding error", "imdecode", "!buf.empty()", "cannot identify image")),
    (ErrorClass.TRUNCATED, ("incompleteread", "incomplete read")),
    (ErrorClass.TLS_ERROR, ("ssl", "certificate")),
    (ErrorClass.TIMEOUT, ("timed out", "timeout")),
    (
        ErrorClass.DNS_ERROR,
        (
            "name or service not known",
            "temporary failure in name resolution",
            "no address associated with hostname",
            "nodename nor servname",
            "getaddrinfo failed",
            "[errno -2]",
            "[errno -3]",
            "[errno -5]",
        ),
    ),
    (
        ErrorClass.CONNECT_ERROR,
        (
            "connection refused",
            "no route to host",
            "network is unreachable",
            "cannot assign requested address",
        ),
    ),
    (
        ErrorClass.CONNECTION_RESET,
        ("connection reset", "remote end closed connection", "connection aborted", "broken pipe"),
    ),
    (ErrorClass.UNSUPPORTED_SCHEME, ("unknown url type",)),
    (
        ErrorClass.INVALID_URL,
        ("no host given", "can't contain control characters", "invalid url", "nonnumeric port"),
    ),
    (ErrorClass.PROTOCOL_ERROR, ("badstatusline", "linetoolong", "got more than", "remotedisconnected")),
)


def classify(status: str | None, message: str | None, url: str | None = "") -> tuple[ErrorClass, int | None]:
    """The failure class of an img2dataset row that is not a success, and its HTTP status if any."""
    if url is None or not str(url).strip():
        return ErrorClass.MISSING_URL, None  # img2dataset tried anyway ("unknown url type: 'None'")
    text = (message or "").strip()
    http = _HTTP.search(text)
    if http is not None:
        code = int(http.group(1))
        if 300 <= code < 400 and "infinite loop" in text:
            return ErrorClass.TOO_MANY_REDIRECTS, code
        return ErrorClass.HTTP_ERROR, code
    lowered = text.lower()
    for error_class, needles in _RULES:
        if any(needle in lowered for needle in needles):
            return error_class, None
    return ErrorClass.IMPORTED_ERROR, None
