"""Cutting the URL list into fixed-size input shards under ``DIR/_input/`` (streaming, resumable).

Shard ``k`` always holds input rows ``[k*S, (k+1)*S)``, so a rerun maps every row to the same raw
shard. The manifest is written last; it also records what the shards were made from, so a rerun
with a different list or options is refused instead of silently mixing two inputs.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from pipeline.dataset import Dataset
from pipeline.download.host_grouping import grouped_by_host
from pipeline.errors import UserInputError
from pipeline.ingest import IngestOptions, iter_canonical_batches, list_input_files
from schemas.url_list import URL_LIST_VERSION

log = logging.getLogger(__name__)


def input_signature(options: IngestOptions, samples_per_shard: int) -> dict[str, Any]:
    """What the input shards depend on: files (name, size, version key), read options, shard size."""
    files = []
    for url in list_input_files(options.urls, options.input_format):
        fs, path = fsspec.core.url_to_fs(url)
        # ukey changes when the file does (size and modification time on most filesystems).
        files.append({"path": url, "size": fs.info(path).get("size"), "key": fs.ukey(path)})
    read_options = {k: v for k, v in asdict(options).items() if k not in ("urls", "batch_size")}
    read_options["keep_cols"] = list(options.keep_cols)
    return {
        "files": files,
        "options": read_options,
        "samples_per_shard": samples_per_shard,
        "schema_version": URL_LIST_VERSION,
    }


def prepare_input_shards(
    dataset: Dataset, options: IngestOptions, samples_per_shard: int, group_hosts: int = 0
) -> dict[str, Any]:
    """Write (or reuse) the input shards and return the manifest.

    ``group_hosts`` N > 0: each host's rows together within windows of N shards
    (:mod:`pipeline.download.host_grouping`); recorded in the signature only then, so the
    signatures of lists cut in list order are unchanged.
    """
    signature = input_signature(options, samples_per_shard)
    if group_hosts:
        signature["group_hosts"] = group_hosts
    folder = dataset.input
    manifest = folder.manifest()
    if manifest is not None:
        if signature not in list_signatures(manifest):
            raise UserInputError(
                f"{dataset.url} was started from a different URL list or different ingest options "
                f"(recorded in {dataset.display(*folder.manifest_file)}); use a new --dataset, pass "
                "--append to add this list to it, or --overwrite"
            )
        log.info("reusing %d input shards from an earlier run", manifest["shard_count"])
        return manifest
    folder.makedirs()
    folder.remove_temporaries()
    shard, rows, errors = write_input_shards(dataset, options, samples_per_shard, group_hosts=group_hosts)
    manifest = {
        "signature": signature,
        "shard_count": shard,
        "rows": rows,
        "ingest_errors": dict(sorted(errors.items())),
    }
    dataset.storage.write_json(manifest, *folder.manifest_file)
    log.info("URL list: %d rows in %d shards, %d unusable rows", rows, shard, sum(errors.values()))
    return manifest


def list_signatures(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The signatures of the lists in the dataset: the first, then each added with --append."""
    return [manifest["signature"], *(part["signature"] for part in manifest.get("appended", []))]


def write_input_shards(
    dataset: Dataset,
    options: IngestOptions,
    samples_per_shard: int,
    first_shard: int = 0,
    first_row: int = 0,
    group_hosts: int = 0,
) -> tuple[int, int, Counter[str]]:
    """Cut the list into shards ``first_shard``, ... (rows numbered from ``first_row``: a list added
    with --append; hosts grouped in windows of ``group_hosts`` shards when > 0); returns the end
    shard index, the rows and the ingest error counts."""
    folder = dataset.input
    errors: Counter[str] = Counter()
    rows = 0
    shard = first_shard
    pending: list[pa.Table] = []
    pending_rows = 0
    with tqdm(desc="reading URL list", unit=" rows", unit_scale=True, mininterval=2) as progress:
        batches = iter_canonical_batches(options)
        if group_hosts:
            batches = grouped_by_host(batches, group_hosts * samples_per_shard)
        for table in batches:
            if first_row:  # a list added with --append: its indices follow the dataset's (keep this
                # offset if rows are ever reordered or renumbered here)
                index = table.schema.get_field_index("row_index")
                shifted = pc.add(table.column(index), pa.scalar(first_row, pa.int64()))
                table = table.set_column(index, table.schema.field(index), shifted)
            rows += table.num_rows
            progress.update(table.num_rows)
            errors.update(e for e in table.column("ingest_error").to_pylist() if e is not None)
            pending.append(table)
            pending_rows += table.num_rows
            while pending_rows >= samples_per_shard:
                merged = pa.concat_tables(pending)
                dataset.storage.write_parquet(
                    merged.slice(0, samples_per_shard), *folder.shard(shard).table_file.parts
                )
                shard += 1
                rest = merged.slice(samples_per_shard)
                pending, pending_rows = [rest], rest.num_rows
        if pending_rows:
            dataset.storage.write_parquet(pa.concat_tables(pending), *folder.shard(shard).table_file.parts)
            shard += 1
    return shard, rows, errors


def read_input_shard(dataset: Dataset, shard: int) -> pa.Table:
    """Read input shard ``shard``, checked against the URL list contract."""
    return dataset.input.shard(shard).table_file.read()
