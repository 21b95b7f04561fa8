"""An img2dataset command line given to the download job: aliases, translated and refused flags."""

from __future__ import annotations

import pytest

from pipeline.download.img2dataset_flags import NO_COUNTERPART
from pipeline.image import EncodeFormat, ResampleFilter, ResizeMode
from tests.stages import download_options, parser

# benchmarks/download.py's img2dataset command, plus every other flag with a counterpart.
IMG2DATASET_ARGS = [
    "--url_list=urls.parquet",
    "--input_format=parquet",
    "--url_col=URL",
    "--caption_col=TEXT",
    "--output_format=parquet",
    "--output_folder=/data/ds",
    "--processes_count=1",
    "--thread_count=32",
    "--image_size=384",
    "--resize_mode=keep_ratio_largest",
    "--resize_only_if_bigger=True",
    "--upscale_interpolation=lanczos4",
    "--downscale_interpolation=cubic",
    "--encode_format=webp",
    "--encode_quality=90",
    "--number_sample_per_shard=1000",
    "--distributor=multiprocessing",
    "--enable_wandb=False",
    "--retries=0",
    "--timeout=20",
    "--save_additional_columns=['WIDTH','HEIGHT']",
    "--verify_hash=['sha256_col','sha256']",
    "--min_image_size=64",
    "--max_image_area=inf",
    "--max_aspect_ratio=3",
    "--user_agent_token=img2dataset",
    "--disallowed_header_directives=['noai','noimageai']",
    "--incremental_mode=incremental",
    "--compute_hash=sha256",
    "--extract_exif=False",
    "--oom_shard_count=5",
    "--subjob_size=1000",
    "--max_shard_retry=1",
]


def test_an_img2dataset_command_line_means_the_same_here() -> None:
    options = download_options([a for a in IMG2DATASET_ARGS if a != "--processes_count=1"])
    assert (options.ingest.urls, options.dataset) == ("urls.parquet", "/data/ds")
    assert (options.ingest.input_format, options.ingest.url_col, options.ingest.caption_col) == (
        "parquet",
        "URL",
        "TEXT",
    )
    assert options.ingest.keep_cols == ("WIDTH", "HEIGHT", "sha256_col")  # the hash column is read too
    assert options.output_format == "parquet" and options.verify_hash == "sha256:sha256_col"
    assert (
        options.fetch.concurrency == 32 and options.fetch.retries == 0 and options.fetch.total_timeout == 20
    )
    assert options.fetch.user_agent_token == "img2dataset"
    assert options.fetch.disallowed_header_directives == ("noai", "noimageai")
    image = options.image
    assert (image.image_size, image.resize_mode, image.resize_only_if_bigger) == (
        384,
        ResizeMode.KEEP_RATIO_LARGEST,
        True,
    )
    assert (image.upscale_filter, image.downscale_filter) == (ResampleFilter.LANCZOS, ResampleFilter.BICUBIC)
    assert (image.encode_format, image.encode_quality) == (EncodeFormat.WEBP, 90)
    assert (image.min_image_size, image.max_aspect_ratio, image.max_pixels > 10**15) == (64, 3.0, True)
    assert options.samples_per_shard == 1000 and not options.overwrite and not options.append


@pytest.mark.parametrize(
    ("mode", "overwrite", "append"), [("overwrite", True, False), ("extend", False, True)]
)
def test_incremental_mode_maps_onto_overwrite_and_append(mode: str, overwrite: bool, append: bool) -> None:
    options = download_options(
        ["--url_list", "u.parquet", "--output_folder", "ds", f"--incremental_mode={mode}"]
    )
    assert (options.overwrite, options.append) == (overwrite, append)


@pytest.mark.parametrize(
    ("flag", "reason"),
    [
        ("--processes_count=16", "--master local[N]"),
        ("--distributor=ray", "always runs its shards as Spark tasks"),
        ("--enable_wandb=True", "no Weights & Biases"),
        ("--compute_hash=md5", "--verify-hash"),
        ("--extract_exif", "EXIF is not stored"),
        ("--skip_reencode=True", "re-encoded"),
        ("--bbox_col=box", "no blurring"),
        ("--oom_shard_count=6", "five digits"),
        ("--incremental_mode=sometimes", "one of incremental, overwrite, extend"),
    ],
)
def test_flags_without_counterpart_are_refused_with_the_reason(
    flag: str, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        download_options(["--urls", "u.parquet", "--dataset", "ds", flag])
    assert reason in capsys.readouterr().err


def test_help_names_every_img2dataset_flag_in_its_last_lines() -> None:
    text = " ".join(parser("download").format_help().split())
    options_part, _, tail = text.partition("img2dataset aliases:")
    for spec in NO_COUNTERPART:
        assert spec.flag in tail and spec.flag not in options_part
    packed = "".join(tail.split())  # the help wraps lines at hyphens too
    for alias in ("--url_list=--urls", "--thread_count=--concurrency", "--output_format=--output-format"):
        assert alias in packed
    assert "--incremental_mode" in tail
