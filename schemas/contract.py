"""Checking an Arrow schema against a named, versioned contract at a stage boundary."""

from __future__ import annotations

import pyarrow as pa

NAME_KEY = b"corpusforge.schema"
VERSION_KEY = b"corpusforge.schema_version"


class SchemaMismatch(ValueError):
    """Data at a stage boundary does not follow the contract the stage expects."""


def versioned(name: str, version: int, fields: list[pa.Field]) -> pa.Schema:
    """Build a schema whose metadata names the contract and its version."""
    return pa.schema(fields, metadata={NAME_KEY: name.encode(), VERSION_KEY: str(version).encode()})


def schema_version(schema: pa.Schema) -> tuple[str, int] | None:
    """Return (contract name, version) stored in ``schema``'s metadata, or None."""
    meta = schema.metadata or {}
    if NAME_KEY not in meta or VERSION_KEY not in meta:
        return None
    return meta[NAME_KEY].decode(), int(meta[VERSION_KEY])


def check_schema(actual: pa.Schema, expected: pa.Schema, where: str) -> None:
    """Raise :class:`SchemaMismatch` naming ``where`` unless ``actual`` follows ``expected``.

    Field names, order, types and the contract version must match; nullability is not compared
    because Parquet round trips may widen it.
    """
    want = schema_version(expected)
    got = schema_version(actual)
    if want is not None and got is not None and got != want:
        raise SchemaMismatch(
            f"{where}: written with schema {got[0]} v{got[1]}, this version reads {want[0]} v{want[1]}"
        )
    got_fields = [(f.name, f.type) for f in actual]
    want_fields = [(f.name, f.type) for f in expected]
    if got_fields != want_fields:
        missing = [n for n, _ in want_fields if n not in dict(got_fields)]
        wrong = [
            f"{n}: {t} (expected {dict(want_fields)[n]})"
            for n, t in got_fields
            if n in dict(want_fields) and dict(want_fields)[n] != t
        ]
        raise SchemaMismatch(
            f"{where}: schema does not match {want[0] if want else 'contract'}; "
            f"missing={missing} wrong_types={wrong}"
        )
