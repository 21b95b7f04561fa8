"""The labels a probe is trained on: ``uid,label`` rows from a CSV, text or Parquet file.

- ``.csv``/``.txt``/``.tsv`` (gzip or not): one ``uid,label`` row per line (comma, tab or spaces
  between); a first line whose label is not a number is a header and skipped; ``#`` comments and
  blank lines are ignored.
- ``.parquet``: the columns ``uid`` and ``label``.

A binary target takes 0/1 (or true/false); a regression target any finite number.
"""

from __future__ import annotations

import gzip
import io
import math
import re

from pipeline.errors import UserInputError
from pipeline.remote import exists, fresh_fs

_SPLIT = re.compile(r"[,\t ]+")
_BOOLEANS = {"true": 1.0, "false": 0.0}


def read_labels(path: str, target: str, flag: str = "--labels") -> dict[str, float]:
    """``uid -> label`` of the file at ``path``; ``UserInputError`` naming the file and row on bad input."""
    if not exists(path, flag):
        raise UserInputError(f"{flag} {path}: no such file")
    fs, local = fresh_fs(path)
    with fs.open(local, "rb") as handle:
        data = handle.read()
    name = path.lower().removesuffix(".gz")
    if path.lower().endswith(".gz"):
        data = gzip.decompress(data)
    if name.endswith(".parquet"):
        pairs = _parquet_rows(data, path, flag)
    elif name.endswith((".csv", ".txt", ".tsv")):
        pairs = _text_rows(data, path, flag)
    else:
        raise UserInputError(f"{flag} {path}: unknown format; expected .csv, .tsv, .txt or .parquet")
    labels: dict[str, float] = {}
    for where, uid, text in pairs:
        value = _label(text, target, f"{flag} {path}, {where}")
        if uid in labels and labels[uid] != value:
            raise UserInputError(
                f"{flag} {path}, {where}: uid {uid} is labelled twice ({labels[uid]:g} and {value:g})"
            )
        labels[uid] = value
    if not labels:
        raise UserInputError(f"{flag} {path}: no labelled rows")
    return labels


def _text_rows(data: bytes, path: str, flag: str) -> list[tuple[str, str, str]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserInputError(f"{flag} {path}: not UTF-8 text ({exc})") from exc
    rows = []
    first = True
    for number, line in enumerate(io.StringIO(text), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = _SPLIT.split(line)
        if len(fields) != 2:
            raise UserInputError(f"{flag} {path}, line {number}: expected 'uid,label', got {line[:80]!r}")
        if first and not _is_number(fields[1]) and fields[1].lower() not in _BOOLEANS:
            first = False
            continue  # a header
        first = False
        rows.append((f"line {number}", fields[0], fields[1]))
    return rows


def _parquet_rows(data: bytes, path: str, flag: str) -> list[tuple[str, str, str]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a bad file
        raise UserInputError(f"{flag} {path}: not a readable Parquet file ({exc})") from exc
    missing = [c for c in ("uid", "label") if c not in table.column_names]
    if missing:
        raise UserInputError(f"{flag} {path}: no column {missing} (has {table.column_names})")
    uids = table.column("uid").to_pylist()
    values = table.column("label").to_pylist()
    return [(f"row {i}", str(u), str(v)) for i, (u, v) in enumerate(zip(uids, values, strict=True))]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _label(text: str, target: str, where: str) -> float:
    lowered = text.strip().lower()
    value = _BOOLEANS.get(lowered)
    if value is None:
        try:
            value = float(lowered)
        except ValueError:
            raise UserInputError(f"{where}: label {text!r} is not a number") from None
    if not math.isfinite(value):
        raise UserInputError(f"{where}: label {text!r} is not finite")
    if target == "binary" and value not in (0.0, 1.0):
        raise UserInputError(
            f"{where}: label {text!r} of a binary probe must be 0 or 1 (use --target regression for scores)"
        )
    return value
