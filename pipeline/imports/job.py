"""Importing an img2dataset output folder as a dataset: one Spark task per img2dataset shard.

The dataset gets ``raw/`` only (no ``_input/``: the URL list was img2dataset's): raw shard
``NNNNN`` from img2dataset's shard ``NNNNN``, ``raw/_options.json`` (the image options, the
format taken from the images, and where they came from), ``raw/sizes.json`` and
``raw/_summary.json``. score, dedup, build_shards and the report then run on it as on a download.
A rerun resumes: shards imported from the same files are kept.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

from pipeline.dataset import Dataset
from pipeline.download.sizes import write_raw_sizes
from pipeline.download.summary import format_summary as format_download_summary
from pipeline.download.summary import summarise
from pipeline.errors import UserInputError
from pipeline.executor import SparkExecutor
from pipeline.image.options import EncodeFormat, ImageOptions, image_record
from pipeline.imports.options import ImportOptions
from pipeline.imports.shard import IMPORT_VERSION, ImportShard, ImportTask, success_uids
from pipeline.imports.source import Source, find_source
from pipeline.runner import fingerprint
from pipeline.stage import Stage
from schemas.raw_shard import RAW_SHARD_VERSION

log = logging.getLogger(__name__)


class ImportStage(Stage[ImportOptions]):
    name = "import_img2dataset"
    options_type = ImportOptions
    description = (
        "Import an img2dataset output folder (webdataset, parquet or files format) as the raw shards "
        "of a dataset, with uids, sha256 and pHash, so score, dedup and build_shards run on it."
    )

    def check_inputs(self, options: ImportOptions) -> None:
        """Fail before Spark starts when the source holds no img2dataset shard or the dataset is
        a download."""
        find_source(options.source)
        if not options.overwrite:
            _refuse_a_download(Dataset(options.dataset))

    def run(self, executor: SparkExecutor, options: ImportOptions) -> dict[str, Any]:
        """Import every shard not yet imported; return (and write) the summary."""
        started = time.time()
        dataset = Dataset(options.dataset)
        if options.overwrite and dataset.raw.exists():
            log.warning("--overwrite: deleting %s", dataset.raw.display())
            dataset.raw.remove()
        _refuse_a_download(dataset)
        source = find_source(options.source)
        wanted = _record_options(dataset, source, options.image)
        dataset.raw.makedirs()
        removed = dataset.raw.remove_temporaries()  # no task runs yet: a dead writer's files
        if removed:
            log.info("removed %d partial files of an interrupted run", removed)
        duplicates = find_duplicates(executor, source)
        inputs = fingerprint(output=wanted, version=IMPORT_VERSION, raw_schema=RAW_SHARD_VERSION)
        tasks = [ImportTask(s, duplicates.get(s.index, ())) for s in source.shards]
        stats = executor.map(ImportShard(source.url, dataset.url, source.image_ext, inputs), tasks)
        sizes = write_raw_sizes(dataset)
        rows = sum(s["rows"] for s in stats)
        dup_count = sum(len(d) for d in duplicates.values())
        summary = summarise(
            stats, {"rows": rows}, {"duplicate_pair": dup_count, "duplicate_url": 0}, time.time() - started
        )
        summary["imported_from"] = {
            "tool": "img2dataset",
            "source": source.storage.display(),
            "layouts": sorted({s.layout for s in source.shards}),
            "shards": len(source.shards),
            "incomplete_shards_left_out": list(source.incomplete),
            "img2dataset_successes": sum(s.get("img2dataset_successes", 0) for s in stats),
            "sha256_from": _sum_counts(s.get("sha256_from", {}) for s in stats),
        }
        summary["tar_samples"] = sum(sizes.values())
        dataset.raw.write_summary(summary)
        log.info(
            "import finished: %d of %d rows stored in %.1fs", summary["successes"], rows, summary["seconds"]
        )
        return summary

    def format_summary(self, summary: dict[str, Any]) -> str:
        text = format_download_summary(summary).replace("download summary", "import summary", 1)
        source = summary["imported_from"]
        lines = [
            text,
            f"  from img2dataset    {source['source']} ({', '.join(source['layouts'])}, "
            f"{source['shards']} shards; {source['img2dataset_successes']} successes there)",
        ]
        if source["incomplete_shards_left_out"]:
            lines.append(
                f"  left out            {len(source['incomplete_shards_left_out'])} incomplete shards"
            )
        return "\n".join(lines)


def find_duplicates(executor: SparkExecutor, source: Source) -> dict[int, tuple[int, ...]]:
    """Per source shard, the row indices of successes whose uid an earlier success has.

    As in the download, a uid stays unique in the dataset: the first success (lowest key) keeps
    it, later ones become ``duplicate_pair`` (img2dataset downloads repeated pairs every time).
    """
    url = source.url

    def keys(shard: Any) -> Any:
        return ((uid, (row, shard.index)) for uid, row in success_uids(url, shard))

    later = (
        executor.flat_map(list(source.shards), keys)
        .groupByKey()
        .flatMap(lambda item: sorted(item[1])[1:])
        .collect()
    )
    found: dict[int, list[int]] = {}
    for row, shard in later:
        found.setdefault(shard, []).append(row)
    if later:
        log.info("%d img2dataset successes repeat an earlier URL and caption", len(later))
    return {shard: tuple(sorted(rows)) for shard, rows in found.items()}


def _refuse_a_download(dataset: Dataset) -> None:
    if dataset.input.manifest() is not None:
        raise UserInputError(
            f"{dataset.display()} holds a download ({dataset.display(*dataset.input.manifest_file)}): import "
            "into a new --dataset"
        )


def _record_options(dataset: Dataset, source: Source, image: ImageOptions) -> dict[str, Any]:
    """``raw/_options.json``: the image options (format from the images), refusing another
    source or other options for a dataset already being imported."""
    fmt = EncodeFormat(source.image_ext)
    if image.encode_format is not fmt:
        if image.encode_format is not EncodeFormat.JPEG:
            log.warning(
                "the images are %s: --encode-format %s is ignored", fmt.value, image.encode_format.value
            )
        image = dataclasses.replace(image, encode_format=fmt, encode_quality=None)
    wanted = {
        "image": image_record(image),
        "skip_duplicate_urls": False,
        "imported_from": {"tool": "img2dataset", "source": source.storage.display()},
    }
    recorded = dataset.raw.download_options()
    if recorded is None:
        dataset.storage.write_json(wanted, *dataset.raw.options_file)
    elif recorded != wanted:
        changed = sorted(k for k in wanted if recorded.get(k) != wanted[k])
        raise UserInputError(
            f"{dataset.display()} was imported with other {', '.join(changed)} (recorded in "
            f"{dataset.display(*dataset.raw.options_file)}); use a new --dataset or pass --overwrite"
        )
    return wanted


def _sum_counts(counts: Any) -> dict[str, int]:
    total: dict[str, int] = {}
    for count in counts:
        for key, value in count.items():
            total[key] = total.get(key, 0) + int(value)
    return dict(sorted(total.items()))
