"""Options of the download job, built once from the command line."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from pipeline.errors import UserInputError
from pipeline.fetch.options import FetchOptions
from pipeline.fetch.robots import DEFAULT_DISALLOWED_DIRECTIVES
from pipeline.image.options import DownscaleFilter, EncodeFormat, ImageOptions, ResizeMode
from pipeline.ingest.options import FORMATS, HEADER_MODES, IngestOptions


@dataclass(frozen=True)
class DownloadOptions:
    """Everything the download job needs; immutable so it can be shipped to executors."""

    dataset: str
    ingest: IngestOptions
    fetch: FetchOptions = field(default_factory=FetchOptions)
    image: ImageOptions = field(default_factory=ImageOptions)
    samples_per_shard: int = 10_000
    skip_duplicate_urls: bool = False
    decode_threads: int = 0  # 0: images are processed on the event loop's thread
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.samples_per_shard < 1:
            raise UserInputError(f"--samples-per-shard must be >= 1, got {self.samples_per_shard}")
        if self.decode_threads < 0:
            raise UserInputError(f"--decode-threads must be >= 0, got {self.decode_threads}")


def build_parser() -> argparse.ArgumentParser:
    """The ``jobs/download.py`` command line; every option shows its default in --help."""
    p = argparse.ArgumentParser(
        prog="spark-submit jobs/download.py",
        description="Download, resize and shard the images of a URL-caption list.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--urls", required=True, help="URL list file or folder (any fsspec URL)")
    p.add_argument("--dataset", required=True, help="dataset root folder (any fsspec URL)")
    g = p.add_argument_group("input")
    g.add_argument("--input-format", default="auto", choices=FORMATS, help="auto: from the file extension")
    g.add_argument(
        "--url-col", default=None, help="URL column; unset: the first of url, image_url, link (any case)"
    )
    g.add_argument(
        "--caption-col",
        default=None,
        help="caption column; unset: the first of caption, text, alt, title (any case); empty for none",
    )
    g.add_argument("--keep-cols", default="", help="comma-separated extra columns to keep in KEY.json")
    g.add_argument("--header", default="auto", choices=HEADER_MODES, help="CSV/TSV first line is a header")
    g.add_argument("--allow-empty-caption", action="store_true", help="keep rows whose caption is empty")
    g.add_argument(
        "--skip-duplicate-urls",
        action="store_true",
        help="fetch a URL only for its first row (exact duplicate pairs are always skipped)",
    )
    g = p.add_argument_group("output")
    g.add_argument("--samples-per-shard", type=int, default=10_000, help="input rows per raw shard")
    g.add_argument(
        "--overwrite",
        action="store_true",
        help="delete the dataset's download outputs first instead of resuming",
    )
    g = p.add_argument_group("image")
    g.add_argument("--image-size", type=int, default=256, help="target size in pixels (see --resize-mode)")
    g.add_argument(
        "--resize-mode",
        default="border",
        choices=[m.value for m in ResizeMode],
        help="no: keep size; border: fit and pad to a square; keep_ratio: shorter side = size; "
        "center_crop: shorter side = size, crop the centre square",
    )
    g.add_argument("--resize-only-if-bigger", action="store_true", help="never upscale small images")
    g.add_argument(
        "--downscale-filter",
        default="area",
        choices=[f.value for f in DownscaleFilter],
        help="filter for shrinking (area: pixel averaging, as img2dataset); upscaling is bicubic",
    )
    g.add_argument(
        "--encode-format",
        default="jpg",
        choices=[f.value for f in EncodeFormat],
        help="format of stored images",
    )
    g.add_argument("--encode-quality", type=int, default=95, help="JPEG/WebP quality, 1..100")
    g.add_argument("--min-image-size", type=int, default=0, help="minimum shorter side of the original")
    g.add_argument(
        "--max-aspect-ratio",
        type=float,
        default=float("inf"),
        help="refuse originals whose long/short side ratio is larger",
    )
    g.add_argument(
        "--max-pixels",
        type=int,
        default=ImageOptions.max_pixels,
        help="decompression-bomb guard on the header's width x height",
    )
    g.add_argument("--no-reduced-decode", action="store_true", help="always decode JPEGs at full size")
    g.add_argument(
        "--decode-threads",
        type=int,
        default=DownloadOptions.decode_threads,
        help="image threads per Spark task; 0: on the task's event loop thread (one core per task)",
    )
    g = p.add_argument_group("network")
    g.add_argument("--concurrency", type=int, default=FetchOptions.concurrency, help="requests per task")
    g.add_argument(
        "--per-host-concurrency",
        type=int,
        default=FetchOptions.per_host_concurrency,
        help="connections per host and task",
    )
    g.add_argument("--connect-timeout", type=float, default=FetchOptions.connect_timeout, help="seconds")
    g.add_argument("--timeout", type=float, default=FetchOptions.total_timeout, help="deadline per attempt")
    g.add_argument(
        "--max-bytes",
        type=int,
        default=FetchOptions.max_bytes,
        help="largest body accepted (after Content-Encoding)",
    )
    g.add_argument(
        "--max-redirects", type=int, default=FetchOptions.max_redirects, help="redirects followed per request"
    )
    g.add_argument(
        "--retries",
        type=int,
        default=FetchOptions.retries,
        help="extra attempts for timeouts, resets, 429 and 5xx only",
    )
    g.add_argument(
        "--max-retry-wait",
        type=float,
        default=FetchOptions.max_retry_wait,
        help="a longer Retry-After gives up on the URL instead of waiting",
    )
    g.add_argument(
        "--dns-ttl",
        type=float,
        default=FetchOptions.dns_ttl,
        help="seconds a DNS answer is cached per executor (0: no cache)",
    )
    g.add_argument("--user-agent-token", default="", help="contact info added to the User-Agent")
    g.add_argument(
        "--disallowed-header-directives",
        default=",".join(DEFAULT_DISALLOWED_DIRECTIVES),
        help="X-Robots-Tag directives that exclude an image; '' to ignore the header",
    )
    g.add_argument(
        "--allow-network",
        action="append",
        default=[],
        metavar="CIDR",
        help="permit a non-public network, e.g. 127.0.0.1/32 for a local server (repeatable)",
    )
    return p


def options_from_args(argv: list[str] | None = None) -> DownloadOptions:
    """Parse the command line into frozen options (errors exit with a usage message)."""
    parser = build_parser()
    a = parser.parse_args(argv)
    try:
        return DownloadOptions(
            dataset=a.dataset,
            ingest=IngestOptions(
                urls=a.urls,
                input_format=a.input_format,
                url_col=a.url_col,
                caption_col=a.caption_col,
                keep_cols=_split(a.keep_cols),
                header=a.header,
                allow_empty_caption=a.allow_empty_caption,
            ),
            fetch=FetchOptions(
                concurrency=a.concurrency,
                per_host_concurrency=a.per_host_concurrency,
                connect_timeout=a.connect_timeout,
                total_timeout=a.timeout,
                max_bytes=a.max_bytes,
                max_redirects=a.max_redirects,
                retries=a.retries,
                max_retry_wait=a.max_retry_wait,
                dns_ttl=a.dns_ttl,
                user_agent_token=a.user_agent_token,
                disallowed_header_directives=_split(a.disallowed_header_directives),
                allow_networks=tuple(a.allow_network),
            ),
            image=ImageOptions(
                image_size=a.image_size,
                resize_mode=ResizeMode(a.resize_mode),
                resize_only_if_bigger=a.resize_only_if_bigger,
                downscale_filter=DownscaleFilter(a.downscale_filter),
                encode_format=EncodeFormat(a.encode_format),
                encode_quality=a.encode_quality,
                min_image_size=a.min_image_size,
                max_aspect_ratio=a.max_aspect_ratio,
                max_pixels=a.max_pixels,
                reduced_decode=not a.no_reduced_decode,
            ),
            samples_per_shard=a.samples_per_shard,
            skip_duplicate_urls=a.skip_duplicate_urls,
            decode_threads=a.decode_threads,
            overwrite=a.overwrite,
        )
    except UserInputError as exc:
        parser.error(str(exc))
        raise  # unreachable: parser.error exits


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())
