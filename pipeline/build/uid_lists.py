"""Lists of uids (a subset of a dataset) in DataComp's convention and two plain formats.

The format follows the file's extension:

- ``.npy``: DataComp's subset file, a structured array of dtype ``np.dtype("u8,u8")`` whose
  fields are the high and low 64 bits of the 128-bit uid read as one big-endian hex number
  (``(int(uid[:16], 16), int(uid[16:32], 16))``), sorted; also a headerless file of such pairs
  (DataComp's memory-mapped form) and a plain ``.npy`` array of 32-character uid strings;
- ``.txt``: one uid per line; blank lines and ``#`` comments are ignored;
- ``.parquet``: a ``uid`` string column.

Any fsspec URL. Uids are 32 hex digits (corpusforge's blake2b uid and DataComp's uid have the
same width); upper-case digits are accepted and lower-cased. Inside corpusforge a list is a
sorted, duplicate-free numpy array of ``S32`` (32 ASCII bytes per uid): 10M uids take 320 MB,
with no Python object per uid.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline import remote
from pipeline.errors import UserInputError

DATACOMP_DTYPE = np.dtype("u8,u8")
FORMATS = ("npy", "txt", "parquet")
UID_PATTERN = "^[0-9a-fA-F]{32}$"
_NPY_MAGIC = b"\x93NUMPY"
_HEX = np.array([f"{i:02x}".encode() for i in range(256)], dtype="S2")


def read_uid_list(path: str) -> frozenset[str]:
    """The uids listed in ``path`` (format by extension; see the module docstring).

    Raises UserInputError for a missing file, an unknown extension, a malformed uid (naming its
    line or row and the value) or an ``.npy`` of another dtype.
    """
    return frozenset(uid.decode("ascii") for uid in read_uid_array(path).tolist())


def read_uid_array(path: str, flag: str = "uid list") -> np.ndarray:
    """The uids of ``path`` as a sorted, duplicate-free ``S32`` array (lower-case hex)."""
    fmt = list_format(path, flag)
    data = _read(path, flag)
    if fmt == "npy":
        uids = _npy_uids(data, path)
    elif fmt == "txt":
        uids = _txt_uids(data, path)
    else:
        uids = _parquet_uids(data, path)
    return np.unique(uids)


def write_uid_list(uids: Iterable[str], path: str, fmt: str | None = None) -> None:
    """Write ``uids`` (sorted, duplicates dropped) to ``path`` atomically, any fsspec URL.

    ``fmt`` is ``npy`` (DataComp's ``u8,u8`` subset file), ``txt`` or ``parquet``; by default
    the extension of ``path`` decides. A malformed uid is a UserInputError naming its index.
    """
    fmt = fmt or list_format(path, "uid list")
    if fmt not in FORMATS:
        raise UserInputError(f"unknown uid list format {fmt!r}: expected one of {', '.join(FORMATS)}")
    strings = pa.array(list(uids), pa.string())
    array = np.unique(_checked(strings, path, "index", 0))
    if fmt == "npy":
        buffer = io.BytesIO()
        np.save(buffer, datacomp_array(array), allow_pickle=False)
        data = buffer.getvalue()
    elif fmt == "txt":
        data = b"".join(uid + b"\n" for uid in array.tolist())
    else:
        from pipeline.storage import parquet_bytes

        table = pa.table({"uid": pa.array([u.decode("ascii") for u in array.tolist()], pa.string())})
        data = parquet_bytes(table)
    remote.write_bytes(data, remote.checked_url(path, "uid list"))


def list_format(path: str, flag: str = "uid list") -> str:
    """``npy``, ``txt`` or ``parquet`` from the extension of ``path``; UserInputError otherwise."""
    name = path.rstrip("/").rsplit("/", 1)[-1]
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if extension not in FORMATS:
        raise UserInputError(
            f"{flag} {path}: unknown extension {('.' + extension) if extension else '(none)'}; "
            "expected .npy (DataComp's u8,u8 subset file or 32-character strings), .txt (one uid per "
            "line) or .parquet (a uid column)"
        )
    return extension


def file_digest(path: str, flag: str = "uid list") -> str:
    """sha256 of the file's bytes (read in 1 MiB chunks); UserInputError when it does not exist."""
    fs, local = _existing(path, flag)
    digest = hashlib.sha256()
    with fs.open(local, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def datacomp_array(uids: np.ndarray) -> np.ndarray:
    """Sorted ``S32`` uids as DataComp's structured ``u8,u8`` array (high, low 64 bits)."""
    halves = np.frombuffer(bytes.fromhex(b"".join(uids.tolist()).decode("ascii")), dtype=">u8")
    out = np.empty(len(uids), dtype=DATACOMP_DTYPE)
    out["f0"] = halves[0::2]
    out["f1"] = halves[1::2]
    return out


def uids_from_halves(high: np.ndarray, low: np.ndarray) -> np.ndarray:
    """32-hex-digit ``S32`` uids of 128-bit numbers given as high and low 64-bit halves."""
    pairs = np.empty((len(high), 2), dtype=">u8")
    pairs[:, 0] = high
    pairs[:, 1] = low
    digits = _HEX[pairs.view(np.uint8).reshape(len(high), 16)]
    return np.ascontiguousarray(digits).view("S32").reshape(len(high))


def _existing(path: str, flag: str) -> tuple[object, str]:
    fs, local = remote.url_to_fs(path, flag)
    fs.invalidate_cache(local)
    if not fs.isfile(local):
        raise UserInputError(f"{flag} {path}: no such file")
    return fs, local


def _read(path: str, flag: str) -> bytes:
    fs, local = _existing(path, flag)
    with fs.open(local, "rb") as handle:
        return handle.read()


def _npy_uids(data: bytes, path: str) -> np.ndarray:
    if not data.startswith(_NPY_MAGIC):
        # DataComp also reads a headerless (np.memmap) file of u8,u8 pairs.
        if len(data) % DATACOMP_DTYPE.itemsize:
            raise UserInputError(
                f"{path}: not an .npy file (no NumPy header) and its {len(data)} bytes are not a whole "
                f"number of 16-byte uids (DataComp's memory-mapped u8,u8 form)"
            )
        array = np.frombuffer(data, dtype=DATACOMP_DTYPE)
        return uids_from_halves(array["f0"], array["f1"])
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:
        raise UserInputError(f"{path}: cannot read this .npy file ({exc})") from exc
    expected = "expected DataComp's structured dtype np.dtype('u8,u8') or 32-character strings"
    if array.ndim != 1:
        raise UserInputError(
            f"{path}: array of shape {array.shape}; a uid list is one-dimensional ({expected})"
        )
    fields = array.dtype.fields
    if fields is not None:
        kinds = [(dtype.kind, dtype.itemsize) for dtype, *_ in fields.values()]
        if kinds != [("u", 8), ("u", 8)]:
            raise UserInputError(f"{path}: wrong dtype {array.dtype}; {expected}")
        high, low = (array[name] for name in array.dtype.names)
        return uids_from_halves(high, low)
    if array.dtype.kind not in ("U", "S"):
        raise UserInputError(f"{path}: wrong dtype {array.dtype}; {expected}")
    strings = array.astype(str) if array.dtype.kind == "S" else array
    return _checked(pa.array(strings, pa.string()), path, "index", 0)


def _txt_uids(data: bytes, path: str) -> np.ndarray:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserInputError(f"{path}: not UTF-8 text ({exc})") from exc
    raw = pa.array(text.splitlines(), pa.string())
    lines = pc.utf8_trim_whitespace(pc.replace_substring_regex(raw, "#.*$", ""))
    blank = pc.equal(lines, "")
    return _checked(lines, path, "line", 1, skip=blank)


def _parquet_uids(data: bytes, path: str) -> np.ndarray:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(io.BytesIO(data))
    except (pa.ArrowException, OSError) as exc:
        raise UserInputError(f"{path}: cannot read this parquet file ({exc})") from exc
    names = parquet.schema_arrow.names
    if "uid" not in names:
        raise UserInputError(f"{path}: no uid column (columns: {', '.join(names)})")
    column = parquet.read(columns=["uid"]).column("uid")
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        raise UserInputError(f"{path}: the uid column is {column.type}, expected strings")
    return _checked(column.combine_chunks().cast(pa.string()), path, "row", 0)


def _checked(
    strings: pa.Array, path: str, unit: str, first: int, skip: pa.Array | None = None
) -> np.ndarray:
    """``strings`` as lower-case ``S32``; UserInputError naming the first malformed one."""
    if len(strings) == 0:
        return np.empty(0, dtype="S32")
    valid = pc.fill_null(pc.match_substring_regex(strings, UID_PATTERN), False)
    if skip is not None:
        valid = pc.or_(valid, skip)
    if not pc.all(valid).as_py():
        bad = pc.index(valid, False).as_py()
        value = strings[bad].as_py()
        raise UserInputError(
            f"{path}: {unit} {bad + first}: malformed uid {value!r}: a uid is 32 hex digits"
        )
    if skip is not None:
        strings = strings.filter(pc.invert(skip))
    if len(strings) == 0:
        return np.empty(0, dtype="S32")
    fixed = pc.utf8_lower(strings).cast(pa.binary()).cast(pa.binary(32))
    return np.frombuffer(fixed.buffers()[1], dtype="S32", count=len(fixed), offset=fixed.offset * 32).copy()
