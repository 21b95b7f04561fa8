"""uid lists (pipeline/build/uid_lists.py): every format both ways, DataComp's own recipe, every error."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.build.uid_lists import read_uid_list, write_uid_list
from pipeline.errors import UserInputError

UIDS = [hashlib.blake2b(str(i).encode(), digest_size=16).hexdigest() for i in range(50)] + [
    "0" * 32,
    "f" * 32,
    "139e4a9b22a614771f06c700a8ebe150",  # DataComp README's example
]


def datacomp_subset(uids: list[str], path: Path) -> None:
    """A subset file written exactly as DataComp's README says."""
    processed_uids = np.array([(int(uid[:16], 16), int(uid[16:32], 16)) for uid in uids], np.dtype("u8,u8"))
    processed_uids.sort()
    np.save(path, processed_uids)


@pytest.mark.parametrize("extension", ["npy", "txt", "parquet"])
def test_round_trip(tmp_path: Path, extension: str) -> None:
    path = tmp_path / f"list.{extension}"
    write_uid_list(UIDS + UIDS[:5] + [UIDS[7].upper()], str(path))  # duplicates and upper case
    assert read_uid_list(str(path)) == frozenset(UIDS)


def test_format_given_overrides_the_extension(tmp_path: Path) -> None:
    path = tmp_path / "list.npy"
    write_uid_list(UIDS, str(path), fmt="txt")
    assert path.read_text().split() == sorted(UIDS)


def test_datacomp_subset_files_both_ways(tmp_path: Path) -> None:
    theirs, ours = tmp_path / "theirs.npy", tmp_path / "ours.npy"
    datacomp_subset(UIDS, theirs)
    assert read_uid_list(str(theirs)) == frozenset(UIDS)
    write_uid_list(reversed(UIDS), str(ours))
    assert ours.read_bytes() == theirs.read_bytes()  # DataComp's resharder reads ours as its own
    written = np.load(ours)
    assert written.dtype == np.dtype("u8,u8") and (np.sort(written) == written).all()
    # Its resharder's key for a uid: divmod(int(uid, 16), 2**64), looked up with searchsorted.
    key = np.array([divmod(int(UIDS[3], 16), 2**64)], np.dtype("u8,u8"))[0]
    assert written[np.searchsorted(written, key)] == key
    # The headerless (np.memmap) form the resharder also reads.
    memmap = tmp_path / "subset.npy"
    np.load(theirs).tofile(memmap)
    assert read_uid_list(str(memmap)) == frozenset(UIDS)


def test_npy_of_strings_and_txt_comments(tmp_path: Path) -> None:
    strings = tmp_path / "strings.npy"
    np.save(strings, np.array(UIDS))
    assert read_uid_list(str(strings)) == frozenset(UIDS)
    text = tmp_path / "list.txt"
    text.write_text(f"# explorer export\n\n  {UIDS[0]}  # the first\n{UIDS[1]}\n\n")
    assert read_uid_list(str(text)) == {UIDS[0], UIDS[1]}


def test_fsspec_urls() -> None:
    url = "memory://corpusforge-test-lists/sub/list.parquet"
    write_uid_list(UIDS, url)
    assert read_uid_list(url) == frozenset(UIDS)


def test_empty_lists_round_trip(tmp_path: Path) -> None:
    for extension in ("npy", "txt", "parquet"):
        path = tmp_path / f"empty.{extension}"
        write_uid_list([], str(path))
        assert read_uid_list(str(path)) == frozenset()


def _error(path: Path | str) -> str:
    with pytest.raises(UserInputError) as info:
        read_uid_list(str(path))
    return str(info.value)


def test_errors_name_the_file_the_row_and_the_value(tmp_path: Path) -> None:
    assert _error(tmp_path / "missing.txt") == f"uid list {tmp_path / 'missing.txt'}: no such file"
    assert "unknown extension .csv; expected .npy" in _error(tmp_path / "list.csv")
    assert "unknown extension (none)" in _error(tmp_path / "list")

    text = tmp_path / "bad.txt"
    text.write_text(f"# header\n{UIDS[0]}\n\n{UIDS[1][:-1]}\n")
    assert _error(text) == f"{text}: line 4: malformed uid '{UIDS[1][:-1]}': a uid is 32 hex digits"

    parquet = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"uid": [UIDS[0], UIDS[1], "g" * 32]}), parquet)
    assert _error(parquet) == f"{parquet}: row 2: malformed uid '{'g' * 32}': a uid is 32 hex digits"
    pq.write_table(pa.table({"uid": [UIDS[0], None]}), parquet)
    assert f"{parquet}: row 1: malformed uid None" in _error(parquet)
    pq.write_table(pa.table({"key": [UIDS[0]]}), parquet)
    assert _error(parquet) == f"{parquet}: no uid column (columns: key)"
    pq.write_table(pa.table({"uid": [1, 2]}), parquet)
    assert _error(parquet) == f"{parquet}: the uid column is int64, expected strings"

    npy = tmp_path / "bad.npy"
    np.save(npy, np.array([UIDS[0], "x" * 32]))
    assert _error(npy) == f"{npy}: index 1: malformed uid '{'x' * 32}': a uid is 32 hex digits"
    np.save(npy, np.zeros(3, np.dtype("u4,u4")))
    assert "wrong dtype" in _error(npy) and "np.dtype('u8,u8')" in _error(npy)
    np.save(npy, np.zeros(3, np.float64))
    assert _error(npy).startswith(f"{npy}: wrong dtype float64; expected DataComp's structured dtype")
    np.save(npy, np.zeros((2, 2), np.dtype("u8,u8")))
    assert "array of shape (2, 2); a uid list is one-dimensional" in _error(npy)
    np.save(npy, np.array([{"a": 1}], dtype=object))
    assert "cannot read this .npy file" in _error(npy)
    npy.write_bytes(b"x" * 17)
    assert "not an .npy file (no NumPy header) and its 17 bytes" in _error(npy)

    with pytest.raises(UserInputError, match=r"list.txt: index 2: malformed uid 'nope'"):
        write_uid_list([UIDS[0], UIDS[1], "nope"], str(tmp_path / "list.txt"))
    with pytest.raises(UserInputError, match="unknown uid list format 'csv'"):
        write_uid_list(UIDS, str(tmp_path / "list.txt"), fmt="csv")
