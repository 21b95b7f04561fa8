"""img2dataset's failure messages (as 1.47 writes them) mapped to our failure classes."""

from __future__ import annotations

import pytest

from pipeline.errors import ErrorClass
from pipeline.imports.statuses import classify

URL = "http://127.0.0.1:8000/images/000001.jpg"


@pytest.mark.parametrize(
    ("status", "message", "expected", "http"),
    [
        # Each message below was written by img2dataset 1.47.0 against the fault server.
        ("failed_to_download", "HTTP Error 404: Not Found", ErrorClass.HTTP_ERROR, 404),
        ("failed_to_download", "HTTP Error 503: Service Unavailable", ErrorClass.HTTP_ERROR, 503),
        ("failed_to_download", "HTTP Error 429: Too Many Requests", ErrorClass.HTTP_ERROR, 429),
        (
            "failed_to_download",
            "HTTP Error 302: The HTTP server returned a redirect error that would lead to an infinite loop.\n"
            "The last 30x error message was:\nFound",
            ErrorClass.TOO_MANY_REDIRECTS,
            302,
        ),
        (
            "failed_to_download",
            "IncompleteRead(3647 bytes read, 3648 more expected)",
            ErrorClass.TRUNCATED,
            None,
        ),
        ("failed_to_download", "timed out", ErrorClass.TIMEOUT, None),
        ("failed_to_download", "The read operation timed out", ErrorClass.TIMEOUT, None),
        (
            "failed_to_download",
            "<urlopen error [Errno 111] Connection refused>",
            ErrorClass.CONNECT_ERROR,
            None,
        ),
        (
            "failed_to_download",
            "<urlopen error [Errno -2] Name or service not known>",
            ErrorClass.DNS_ERROR,
            None,
        ),
        (
            "failed_to_download",
            "<urlopen error [Errno -3] Temporary failure in name resolution>",
            ErrorClass.DNS_ERROR,
            None,
        ),
        (
            "failed_to_download",
            "Remote end closed connection without response",
            ErrorClass.CONNECTION_RESET,
            None,
        ),
        ("failed_to_download", "[Errno 104] Connection reset by peer", ErrorClass.CONNECTION_RESET, None),
        (
            "failed_to_download",
            "<urlopen error [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
            "self-signed certificate>",
            ErrorClass.TLS_ERROR,
            None,
        ),
        (
            "failed_to_download",
            "Use of image disallowed by X-Robots-Tag directive",
            ErrorClass.OPTED_OUT,
            None,
        ),
        ("failed_to_download", "hash mismatch", ErrorClass.HASH_MISMATCH, None),
        ("failed_to_download", "unknown url type: 'ftp://x/y.jpg'", ErrorClass.UNSUPPORTED_SCHEME, None),
        ("failed_to_download", "<urlopen error no host given>", ErrorClass.INVALID_URL, None),
        ("failed_to_resize", "Image decoding error", ErrorClass.UNDECODABLE, None),
        (
            "failed_to_resize",
            "OpenCV(4.14.0) /io/opencv/modules/imgcodecs/src/loadsave.cpp:1310: error: "
            "(-215:Assertion failed) !buf.empty() in function 'imdecode_'\n",
            ErrorClass.UNDECODABLE,
            None,
        ),
        (
            "failed_to_resize",
            "OpenCV(4.14.0) /io/opencv/modules/imgcodecs/src/loadsave.cpp:79: error: (-215:Assertion failed) "
            "pixels <= CV_IO_MAX_IMAGE_PIXELS in function 'validateInputImageSize'\n",
            ErrorClass.IMAGE_TOO_LARGE,
            None,
        ),
        ("failed_to_resize", "image too small", ErrorClass.IMAGE_TOO_SMALL, None),
        ("failed_to_resize", "image area too large", ErrorClass.IMAGE_TOO_LARGE, None),
        ("failed_to_resize", "aspect ratio too large", ErrorClass.ASPECT_RATIO, None),
        ("failed_to_download", "something nobody foresaw", ErrorClass.IMPORTED_ERROR, None),
        ("failed_to_download", None, ErrorClass.IMPORTED_ERROR, None),
    ],
)
def test_img2dataset_messages_map_to_our_classes(
    status: str, message: str | None, expected: ErrorClass, http: int | None
) -> None:
    assert classify(status, message, URL) == (expected, http)


def test_a_row_without_url_is_missing_url_whatever_urllib_said() -> None:
    assert classify("failed_to_download", "unknown url type: 'None'", None) == (ErrorClass.MISSING_URL, None)
    assert classify("failed_to_download", "unknown url type: ''", " ") == (ErrorClass.MISSING_URL, None)
