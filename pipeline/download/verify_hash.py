"""``--verify-hash ALGORITHM:COLUMN``: refuse downloaded bytes whose hash is not the list's.

img2dataset's ``verify_hash`` (``["COLUMN", "ALGORITHM"]``): the URL list carries the expected
hex digest of each image as served; a body with another digest (a changed or substituted image)
fails its row with ``hash_mismatch``. The column is read with the row (it is added to
``--keep-cols``, so it also lands in ``KEY.json`` and the parquet's ``extra``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from pipeline.cli_options import comma_strings
from pipeline.errors import ErrorClass, SampleError

ALGORITHMS = ("md5", "sha1", "sha256", "sha512")


@dataclass(frozen=True)
class HashCheck:
    """Which digest to compute and which input column holds the expected value."""

    algorithm: str
    column: str

    def check(self, row: dict[str, Any], body: bytes) -> None:
        """Raise ``SampleError(hash_mismatch)`` unless ``body``'s digest is the row's expected one."""
        extra = json.loads(row["extra"]) if row.get("extra") else {}
        expected = extra.get(self.column)
        if not isinstance(expected, str) or not expected.strip():
            raise SampleError(
                ErrorClass.HASH_MISMATCH, f"no expected {self.algorithm} in column {self.column!r}"
            )
        actual = hashlib.new(self.algorithm, body).hexdigest()
        if actual != expected.strip().lower():
            raise SampleError(
                ErrorClass.HASH_MISMATCH,
                f"{self.algorithm} of the downloaded bytes is {actual}, column {self.column!r} says "
                f"{expected.strip()}",
            )


def parse_verify_hash(text: str) -> str:
    """``sha256:COLUMN``, or img2dataset's ``[COLUMN, sha256]``, as ``sha256:COLUMN``; '' for none."""
    body = text.strip()
    if not body:
        return ""
    if body[0] in "[(":
        parts = comma_strings(body)
        if len(parts) != 2:
            raise ValueError("img2dataset's form is [COLUMN, ALGORITHM]")
        column, algorithm = parts
    else:
        algorithm, sep, column = body.partition(":")
        if not sep:
            raise ValueError("expected ALGORITHM:COLUMN, e.g. sha256:sha256")
    algorithm, column = algorithm.strip().lower(), column.strip()
    if algorithm not in ALGORITHMS:
        raise ValueError(f"the algorithm must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}")
    if not column:
        raise ValueError("no column named")
    return f"{algorithm}:{column}"


def hash_check(spec: str) -> HashCheck | None:
    """The check a parsed ``--verify-hash`` value asks for (None when empty)."""
    if not spec:
        return None
    algorithm, _, column = spec.partition(":")
    return HashCheck(algorithm, column)
