"""Arrow data contracts shared by every corpusforge stage.

Each schema carries a version in its metadata; a change to a schema bumps its version so a
stage can refuse data written by an incompatible one (see :func:`check_schema`).
"""

from schemas.contract import SchemaMismatch, check_schema, schema_version
from schemas.raw_shard import RAW_SHARD_SCHEMA, RAW_SHARD_VERSION
from schemas.scores import SCORES_SCHEMA, SCORES_VERSION
from schemas.url_list import URL_LIST_SCHEMA, URL_LIST_VERSION

__all__ = [
    "RAW_SHARD_SCHEMA",
    "RAW_SHARD_VERSION",
    "SCORES_SCHEMA",
    "SCORES_VERSION",
    "URL_LIST_SCHEMA",
    "URL_LIST_VERSION",
    "SchemaMismatch",
    "check_schema",
    "schema_version",
]
