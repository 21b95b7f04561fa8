"""Reading URL lists of any supported format into the canonical URL list schema."""

from pipeline.ingest.options import IngestOptions
from pipeline.ingest.reader import iter_canonical_batches, list_input_files

__all__ = ["IngestOptions", "iter_canonical_batches", "list_input_files"]
