"""The download stage: URL list -> input shards -> raw shards, one Spark task per shard."""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

from pipeline.cli_options import recorded
from pipeline.dataset import Dataset
from pipeline.download.append import all_duplicates, append_to_dataset, appended_fingerprints, first_list
from pipeline.download.duplicates import mark_duplicates
from pipeline.download.export import EXPORT_FORMATS, export_shards
from pipeline.download.host_budget import plan_host_budget
from pipeline.download.img2dataset_flags import add_img2dataset_flags
from pipeline.download.input_shards import prepare_input_shards
from pipeline.download.options import DownloadOptions
from pipeline.download.retry import finish_replacements
from pipeline.download.shard_worker import DownloadShard
from pipeline.download.sizes import write_raw_sizes
from pipeline.download.summary import format_summary, retry_and_append_summary, summarise, warnings_summary
from pipeline.errors import UserInputError
from pipeline.executor import SparkExecutor
from pipeline.image.options import image_record
from pipeline.ingest import list_input_files
from pipeline.runner import fingerprint
from pipeline.stage import Stage
from schemas.raw_shard import RAW_SHARD_VERSION

log = logging.getLogger(__name__)


def output_options(options: DownloadOptions) -> dict[str, Any]:
    """The options that shape stored samples (``raw/_options.json``): a dataset never mixes them."""
    return recorded(
        {
            "image": image_record(options.image),
            "skip_duplicate_urls": options.skip_duplicate_urls,
            "disallowed_header_directives": options.fetch.disallowed_header_directives,
        }
    )


class DownloadStage(Stage[DownloadOptions]):
    name = "download"
    options_type = DownloadOptions
    description = "Download, resize and shard the images of a URL-caption list."

    def parser(self) -> argparse.ArgumentParser:
        """The options' command line, plus img2dataset's flags that have no option here."""
        parser = super().parser()
        add_img2dataset_flags(parser)
        return parser

    def check_inputs(self, options: DownloadOptions) -> None:
        """Fail fast, before Spark starts, when the URL list or the CA bundle cannot be read."""
        list_input_files(options.ingest.urls, options.ingest.input_format)
        options.fetch.check_environment()

    def run(self, executor: SparkExecutor, options: DownloadOptions) -> dict[str, Any]:
        """Download every shard not yet complete; return (and write) the job summary."""
        started = time.time()
        dataset = Dataset(options.dataset)
        if options.overwrite:
            for folder in (dataset.input, dataset.raw, *(dataset.export(f) for f in EXPORT_FORMATS)):
                if folder.exists():
                    log.warning("--overwrite: deleting %s", folder.display())
                    folder.remove()
        dataset.raw.makedirs()
        wanted = _check_output_options(dataset, options)
        phases: dict[str, float] = {}
        clock = time.time()
        if options.append and dataset.input.manifest() is not None:
            manifest = append_to_dataset(
                executor, dataset, options.ingest, options.samples_per_shard, options.append_skip_urls
            )
        else:
            manifest = prepare_input_shards(
                dataset, options.ingest, options.samples_per_shard, options.fetch.politeness.group_hosts
            )
        shard_count = manifest["shard_count"]
        phases["ingest"], clock = time.time() - clock, time.time()
        first_shards, first_rows = first_list(manifest)  # lists added with --append are marked already
        duplicates = mark_duplicates(executor, dataset, first_shards, options.samples_per_shard, first_rows)
        duplicates = all_duplicates(duplicates, manifest)
        phases["duplicates"], clock = time.time() - clock, time.time()
        # Shard rewrites (--retry-failed) a killed run left half done are finished first: their
        # new files still have temporary names.
        finish_replacements(dataset)
        # No task runs yet, so every temporary file left in raw/ belongs to a dead writer.
        removed = dataset.raw.remove_temporaries()
        if removed:
            log.info("removed %d partial files of an interrupted run", removed)
        inputs = fingerprint(signature=manifest["signature"], output=wanted, raw_schema=RAW_SHARD_VERSION)
        hosts = plan_host_budget(executor, dataset, manifest, options)  # --host-concurrency, --per-host-rps
        step = DownloadShard(options, inputs, appended_fingerprints(manifest, inputs), hosts)
        stats = executor.map(step, range(shard_count))
        phases["download"] = time.time() - clock
        # -- img2dataset compatibility: raw/sizes.json and --output-format's copy (docs/download.md)
        write_raw_sizes(dataset)
        export = None
        if options.output_format in EXPORT_FORMATS:
            clock = time.time()
            complete = dataset.raw.complete_indices()
            export = export_shards(
                executor, dataset, options.output_format, options.image.extension, complete
            )
            phases["export"] = time.time() - clock
            log.info("%s copy: %d shards in %s", export["format"], export["shards"], export["folder"])
        summary = summarise(stats, manifest, duplicates, time.time() - started)
        summary.update(retry_and_append_summary(stats, manifest, options.retry_failed))
        summary.update(warnings_summary(stats, options.warnings))
        for warning in summary["warnings"]:
            log.warning("unusual error rate: %s", warning["message"])
        if export is not None:
            summary["export"] = export
        summary["phase_seconds"] = {name: round(value, 2) for name, value in phases.items()}
        dataset.raw.write_summary(summary)
        log.info(
            "download finished: %d of %d rows stored in %.1fs",
            summary["successes"],
            summary["rows"],
            summary["seconds"],
        )
        return summary

    def format_summary(self, summary: dict[str, Any]) -> str:
        return format_summary(summary)


def _check_output_options(dataset: Dataset, options: DownloadOptions) -> dict[str, Any]:
    """Refuse to resume with options that change what is stored (a dataset must not mix them)."""
    wanted = output_options(options)
    recorded_options = dataset.raw.download_options()
    if recorded_options is None:
        dataset.storage.write_json(wanted, *dataset.raw.options_file)
    elif recorded_options != wanted:
        changed = sorted(k for k in wanted if recorded_options.get(k) != wanted[k])
        raise UserInputError(
            f"{dataset.url} was downloaded with other {', '.join(changed)} options "
            f"(recorded in {dataset.display(*dataset.raw.options_file)}); use a new --dataset or pass "
            "--overwrite"
        )
    return wanted
