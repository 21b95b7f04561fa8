"""``run(spark, options)``: the download job, one Spark task per shard."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from typing import Any

from pipeline.dataset import Dataset
from pipeline.download.duplicates import mark_duplicates
from pipeline.download.input_shards import INPUT_DIR, prepare_input_shards
from pipeline.download.options import DownloadOptions
from pipeline.download.shard_worker import download_shard
from pipeline.download.summary import summarise
from pipeline.errors import UserInputError
from pipeline.ingest import list_input_files
from pipeline.shards.raw_writer import RAW_DIR, is_complete
from pipeline.spark_progress import run_with_progress

log = logging.getLogger(__name__)

OPTIONS_FILE = "_options.json"


def check_inputs(options: DownloadOptions) -> None:
    """Fail fast, before Spark starts, when the URL list cannot be found or read."""
    list_input_files(options.ingest.urls, options.ingest.input_format)


def run(spark: Any, options: DownloadOptions) -> dict[str, Any]:
    """Download every shard not yet complete; return (and write) the job summary."""
    started = time.time()
    dataset = Dataset(options.dataset)
    if options.overwrite:
        for folder in (INPUT_DIR, RAW_DIR):
            if dataset.exists(folder):
                log.warning("--overwrite: deleting %s", dataset.path(folder))
                dataset.fs.rm(dataset.path(folder), recursive=True)
    dataset.makedirs(RAW_DIR)
    _check_output_options(dataset, options)
    phases: dict[str, float] = {}
    clock = time.time()
    manifest = prepare_input_shards(dataset, options.ingest, options.samples_per_shard)
    shard_count = manifest["shard_count"]
    phases["ingest"], clock = time.time() - clock, time.time()
    duplicates = mark_duplicates(spark, dataset, shard_count, options.samples_per_shard, manifest["rows"])
    phases["duplicates"], clock = time.time() - clock, time.time()
    # No task runs yet, so every temporary file left in raw/ belongs to a dead writer.
    removed = dataset.remove_temporaries(RAW_DIR)
    if removed:
        log.info("removed %d partial files of an interrupted run", removed)
    done = [s for s in range(shard_count) if is_complete(dataset, s)]
    todo = sorted(set(range(shard_count)) - set(done))
    log.info("%d shards, %d to download", shard_count, len(todo))
    stats = [download_shard(s, options) for s in done]  # reads their stats only
    stats += run_with_progress(
        spark,
        todo,
        lambda shard: download_shard(shard, options),
        "corpusforge-download",
        "downloading shards",
        counters=("rows", "successes"),
    )
    phases["download"] = time.time() - clock
    summary = summarise(stats, manifest, duplicates, time.time() - started)
    summary["phase_seconds"] = {name: round(value, 2) for name, value in phases.items()}
    dataset.write_json_atomic(summary, RAW_DIR, "_summary.json")
    log.info(
        "download finished: %d of %d rows stored in %.1fs",
        summary["successes"],
        summary["rows"],
        summary["seconds"],
    )
    return summary


def _check_output_options(dataset: Dataset, options: DownloadOptions) -> None:
    """Refuse to resume with options that change what is stored (a dataset must not mix them)."""
    wanted = json.loads(
        json.dumps(
            {
                "image": asdict(options.image),
                "skip_duplicate_urls": options.skip_duplicate_urls,
                "disallowed_header_directives": list(options.fetch.disallowed_header_directives),
            }
        )
    )
    if dataset.exists(RAW_DIR, OPTIONS_FILE):
        recorded = dataset.read_json(RAW_DIR, OPTIONS_FILE)
        if recorded != wanted:
            changed = sorted(k for k in wanted if recorded.get(k) != wanted[k])
            raise UserInputError(
                f"{dataset.url} was downloaded with other {', '.join(changed)} options "
                f"(recorded in {RAW_DIR}/{OPTIONS_FILE}); use a new --dataset or pass --overwrite"
            )
    else:
        dataset.write_json_atomic(wanted, RAW_DIR, OPTIONS_FILE)
