"""Downloading one shard: the unit of work of a Spark task (and of a local run).

Fetching is asynchronous (one event loop, a keep-alive connection pool, ``concurrency`` requests
in flight). Decoding, resizing and encoding run on the event loop's thread by default
(``decode_threads`` 0): a Spark task has one core, and handing every image to another thread and
back costs GIL hand-offs and wake-ups without adding any CPU. With ``decode_threads`` N > 0 they
run on a pool of N threads instead (Pillow releases the GIL there), for tasks given several cores.
The shard is committed only when every row has an outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pipeline.dataset import Dataset
from pipeline.download.duplicates import read_shard_duplicates
from pipeline.download.host_budget import HostBudget
from pipeline.download.input_shards import read_input_shard
from pipeline.download.options import DownloadOptions
from pipeline.download.retry import retry_shard
from pipeline.download.retry_classes import parse_retry_classes
from pipeline.errors import ErrorClass, SampleError
from pipeline.fetch import Fetcher
from pipeline.fetch.client import FetcherState
from pipeline.fetch.politeness import host_of
from pipeline.image import ProcessedImage, process_image
from pipeline.image.phash import to_signed64
from pipeline.replace import roll_forward
from pipeline.runner import ShardCommit, completed, run_shard
from pipeline.shards.raw_writer import RawShardWriter, SampleRecord, raw_row
from pipeline.stage import Resources, ShardStep
from schemas.raw_shard import STATUS_FAILED, STATUS_SKIPPED, STATUS_SUCCESS

log = logging.getLogger(__name__)

_SKIP_REASONS = {
    ErrorClass.DUPLICATE_PAIR: "an earlier input row has the same URL and caption",
    ErrorClass.DUPLICATE_URL: "an earlier input row has the same URL",
    ErrorClass.URL_ALREADY_STORED: "the dataset already stores this URL (--append-skip-urls stored)",
    ErrorClass.URL_ALREADY_FAILED: "this URL failed for good in the dataset (--append-skip-urls failed)",
}


@dataclass(frozen=True)
class DownloadShard(ShardStep[int, FetcherState | None]):
    """Download input shard ``k`` into ``raw/`` unless it is complete for the same inputs.

    ``inputs`` is the fingerprint of what every raw shard depends on (the input manifest and
    the options that shape stored samples); the shard index is added per shard.

    Raw shards committed before markers held a fingerprint are kept (``accept_legacy``), as that
    design kept them: a re-download can lose images whose URLs have died since, and the job has
    already refused other stored-sample options (raw/_options.json) and another URL list.
    """

    options: DownloadOptions
    inputs: str
    #: (first shard, fingerprint) of each list added with --append: its shards' inputs.
    appended: tuple[tuple[int, str], ...] = ()
    #: The job-wide per-host budget's plan (None: no job-wide budget).
    hosts: HostBudget | None = None

    name = "corpusforge-download"
    description = "downloading shards"
    counters = ("rows", "successes")

    def resources(self) -> Resources:
        return Resources(cpus=max(1, self.options.decode_threads))

    def setup_key(self) -> tuple[Any, ...]:
        # One fetcher state per worker process and job: robots.txt and tdmrep.json are fetched
        # once per host and process, block lists read once (another dataset gets its own).
        return (self.name, self.inputs, self.options.fetch, self.hosts)

    def setup(self) -> FetcherState:
        shares = self.hosts.shares(Dataset(self.options.dataset)) if self.hosts is not None else None
        return FetcherState.build(self.options.fetch, shares)

    def shard_inputs(self, task: int) -> str:
        """The fingerprint of shard ``task``: its list's (the first, or one added with --append)."""
        inputs = self.inputs
        for first, appended in self.appended:
            if task >= first:
                inputs = appended
        return f"{inputs}:{task}"

    def completed(self, task: int) -> dict[str, Any] | None:
        dataset = Dataset(self.options.dataset)
        output = dataset.raw.shard(task).output
        marker = completed(dataset.storage, output, self.shard_inputs(task), accept_legacy=True)
        # With --retry-failed, a complete shard with failures of a class to retry runs (its task
        # reads the rows to tell which, e.g. by HTTP status).
        retry = self.options.retry_failed
        if marker is not None and retry and parse_retry_classes(retry).may_match(marker.get("errors", {})):
            return None
        return marker

    def process(self, task: int, state: FetcherState | None) -> dict[str, Any]:
        dataset = Dataset(self.options.dataset)
        shard = dataset.raw.shard(task)
        inputs = self.shard_inputs(task)
        if self.options.retry_failed:
            roll_forward(dataset.storage, shard.output)  # a rewrite an earlier attempt left half done
            marker = completed(dataset.storage, shard.output, inputs, accept_legacy=True)
            if marker is not None:
                return retry_shard(dataset, shard, marker, inputs, self.options, state)

        def work(commit: ShardCommit) -> dict[str, Any]:
            rows = read_input_shard(dataset, task).to_pylist()
            duplicates = read_shard_duplicates(dataset, task)
            writer = RawShardWriter(commit, shard, self.options.image.extension)
            try:
                asyncio.run(_download_rows(rows, duplicates, self.options, writer, state))
            finally:
                writer.close()
            return writer.finish()

        return run_shard(dataset.storage, shard.output, inputs, work, accept_legacy=True)


def download_shard(shard: int, options: DownloadOptions, inputs: str = "") -> dict[str, Any]:
    """Download one shard in this process (what a Spark task of the job does)."""
    return DownloadShard(options, inputs).process(shard, None)


async def _download_rows(
    rows: list[dict[str, Any]],
    duplicates: dict[int, str],
    options: DownloadOptions,
    writer: RawShardWriter,
    state: FetcherState | None = None,
) -> None:
    """``state``: the worker process's fetcher state (default: a fresh one)."""
    pending = iter(rows)
    state = state if state is not None else FetcherState.build(options.fetch)
    own_hosts = {host_of(r["url"]) for r in rows if r["url"]} if state.shares.tasks > 1 else ()
    with _image_pool(options.decode_threads) as pool:
        process = _image_processor(pool, options)
        async with Fetcher(options.fetch, state=state, own_hosts=own_hosts) as fetcher:

            async def worker() -> None:
                for row in pending:  # shared iterator: each row is taken by exactly one worker
                    writer.add(await _one_row(row, duplicates, options, fetcher, process))

            await asyncio.gather(
                *(worker() for _ in range(min(options.fetch.concurrency, max(1, len(rows)))))
            )


def _image_pool(threads: int) -> ThreadPoolExecutor | contextlib.nullcontext[None]:
    """A pool of ``threads`` image threads, or no pool (images are processed on the loop's thread)."""
    if threads == 0:
        return contextlib.nullcontext()
    return ThreadPoolExecutor(threads, thread_name_prefix="decode")


def _image_processor(
    pool: ThreadPoolExecutor | None, options: DownloadOptions
) -> Callable[[bytes], Awaitable[ProcessedImage]]:
    """``await process(body)``: process_image on ``pool``, or right here when there is none."""
    if pool is None:

        async def inline(body: bytes) -> ProcessedImage:
            return process_image(body, options.image)

        return inline
    loop = asyncio.get_running_loop()

    def pooled(body: bytes) -> Awaitable[ProcessedImage]:
        return loop.run_in_executor(pool, process_image, body, options.image)

    return pooled


async def _one_row(
    row: dict[str, Any],
    duplicates: dict[int, str],
    options: DownloadOptions,
    fetcher: Fetcher,
    process: Callable[[bytes], Awaitable[ProcessedImage]],
) -> SampleRecord:
    out = _base_row(row)
    if row["ingest_error"] is not None:
        return SampleRecord(
            {
                **out,
                "status": STATUS_SKIPPED,
                "error_class": row["ingest_error"],
                "error_message": row["ingest_message"],
            }
        )
    duplicate = duplicates.get(row["row_index"])
    if duplicate and (duplicate != ErrorClass.DUPLICATE_URL or options.skip_duplicate_urls):
        return SampleRecord(
            {
                **out,
                "status": STATUS_SKIPPED,
                "error_class": duplicate,
                "error_message": _SKIP_REASONS[duplicate],
            }
        )
    try:
        fetched = await fetcher.fetch(row["url"])
        out.update(http_status=fetched.status, final_url=fetched.final_url, original_bytes=len(fetched.body))
        if options.hash_check is not None:  # --verify-hash
            options.hash_check.check(row, fetched.body)
        image = await process(fetched.body)
        fetcher.check_content(image.sha256, image.phash)  # --block-list sha256: and phash: entries
    except SampleError as exc:
        out.update(
            status=STATUS_FAILED,
            error_class=exc.error_class.value,
            error_message=f"{row['url']}: {exc.message}",
        )
        if exc.http_status is not None:
            out["http_status"] = exc.http_status
        return SampleRecord(out)
    except Exception as exc:  # noqa: BLE001 - one odd input must not fail the other rows
        log.exception("unexpected error on %s", row["url"])
        out.update(
            status=STATUS_FAILED,
            error_class=ErrorClass.UNEXPECTED.value,
            error_message=f"{row['url']}: {type(exc).__name__}: {exc}",
        )
        return SampleRecord(out)
    out.update(
        status=STATUS_SUCCESS,
        original_width=image.original_width,
        original_height=image.original_height,
        width=image.width,
        height=image.height,
        stored_bytes=len(image.data),
        sha256=image.sha256,
        phash=to_signed64(image.phash),
    )
    return SampleRecord(out, image.data)


def _base_row(row: dict[str, Any]) -> dict[str, Any]:
    return raw_row(
        uid=row["uid"], row_index=row["row_index"], url=row["url"], caption=row["caption"], extra=row["extra"]
    )
