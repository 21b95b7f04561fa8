"""img2dataset 1.47 flags that have no option here: accepted when they ask for what the job does
anyway, refused with the reason otherwise (never silently ignored).

Flags that do have a counterpart are aliases of its option (``option(..., aliases=...)``);
``--incremental_mode`` maps onto ``--overwrite`` and ``--append``. The table in
docs/download.md ("img2dataset users") says the same for people.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

_FALSE = ("false", "0", "no", "off")


def _any(value: str) -> bool:
    return True


def _false(value: str) -> bool:
    return value.strip().lower() in _FALSE


def _one_of(*values: str) -> Callable[[str], bool]:
    return lambda value: value.strip().lower() in values


@dataclass(frozen=True)
class NoCounterpart:
    """An img2dataset flag with no option here: the values that change nothing, and why."""

    flag: str
    accepts: Callable[[str], bool]
    reason: str


NO_COUNTERPART = (
    NoCounterpart(
        "--processes_count",
        lambda value: False,
        "Spark runs one task per shard on the cores it is given: set them with spark-submit "
        "(--master local[N], or executors and --executor-cores)",
    ),
    NoCounterpart(
        "--distributor",
        _one_of("multiprocessing", "pyspark"),
        "the job always runs its shards as Spark tasks (local mode on one machine)",
    ),
    NoCounterpart("--subjob_size", _any, "each Spark task is one shard; Spark schedules them"),
    NoCounterpart(
        "--max_shard_retry",
        _any,
        "Spark retries a failed task (spark.task.maxFailures) and a rerun resumes unfinished shards",
    ),
    NoCounterpart(
        "--enable_wandb",
        _false,
        "no Weights & Biases logging: raw/_summary.json, the progress bar and corpusforge report "
        "show the run",
    ),
    NoCounterpart("--wandb_project", _any, "used only with --enable_wandb"),
    NoCounterpart("--oom_shard_count", _one_of("5"), "raw shard names always have five digits"),
    NoCounterpart(
        "--compute_hash",
        _one_of("sha256", "none", ""),
        "the sha256 of the downloaded bytes is always stored (raw parquet column sha256); "
        "--verify-hash checks md5, sha1 or sha512 digests given in the list",
    ),
    NoCounterpart(
        "--extract_exif",
        _false,
        "EXIF is not stored; the EXIF orientation is applied to the stored pixels",
    ),
    NoCounterpart(
        "--skip_reencode",
        _false,
        "every image is decoded and re-encoded, so its checks, EXIF orientation and pHash describe "
        "the stored pixels",
    ),
    NoCounterpart(
        "--disable_all_reencoding",
        _false,
        "every image is decoded and re-encoded, so its checks, EXIF orientation and pHash describe "
        "the stored pixels",
    ),
    NoCounterpart("--bbox_col", lambda value: False, "there is no blurring of bounding boxes"),
)

INCREMENTAL_MODES = ("incremental", "overwrite", "extend")


class _NoCounterpartAction(argparse.Action):
    def __init__(self, option_strings: list[str], dest: str, spec: NoCounterpart, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.spec = spec

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: Any, values: Any, option: Any = None
    ) -> None:
        value = str(values)
        if not self.spec.accepts(value):
            parser.error(
                f"img2dataset's {self.spec.flag}={value} has no counterpart here: {self.spec.reason}"
            )
        log.info("img2dataset's %s=%s changes nothing here: %s", self.spec.flag, value, self.spec.reason)


class _IncrementalModeAction(argparse.Action):
    def __call__(
        self, parser: argparse.ArgumentParser, namespace: Any, values: Any, option: Any = None
    ) -> None:
        mode = str(values).strip().lower()
        if mode not in INCREMENTAL_MODES:
            parser.error(f"--incremental_mode must be one of {', '.join(INCREMENTAL_MODES)}, got {values!r}")
        if mode == "overwrite":
            namespace.overwrite = True
        elif mode == "extend":
            namespace.append = True
        # incremental: resuming is what the job does by default


def add_img2dataset_flags(parser: argparse.ArgumentParser) -> None:
    """Hidden arguments for the flags above and ``--incremental_mode``, named in ``--help``'s last
    paragraph."""
    for spec in NO_COUNTERPART:
        parser.add_argument(
            spec.flag,
            action=_NoCounterpartAction,
            spec=spec,
            nargs="?",
            const="True",
            dest=f"img2dataset_{spec.flag.lstrip('-')}",
            default=argparse.SUPPRESS,
            help=argparse.SUPPRESS,
        )
    parser.add_argument(
        "--incremental_mode",
        action=_IncrementalModeAction,
        dest="img2dataset_incremental_mode",
        default=argparse.SUPPRESS,
        help=argparse.SUPPRESS,
        metavar="MODE",
    )
    flags = ", ".join(spec.flag for spec in NO_COUNTERPART)
    line = (
        "img2dataset's --incremental_mode: incremental (resume, the default), overwrite (= --overwrite), "
        f"extend (= --append). img2dataset flags with no counterpart, accepted only when they ask for "
        f"what this job does anyway (docs/download.md says why): {flags}."
    )
    parser.epilog = f"{parser.epilog}\n\n{line}" if parser.epilog else line
