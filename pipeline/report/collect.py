"""Stage outputs of one dataset read into plain data for the report.

Each ``collect_*`` function returns its section's data, or :class:`Missing` with a note saying
which stage has not run (or which file could not be read). Nothing here draws or writes.
Large inputs are reduced while they are read (fixed-bin histograms, bottom-k samples), so memory
does not grow with the corpus.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import math
import tarfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image
from tqdm import tqdm

from pipeline.dataset import IMAGE_EXTS, Dataset
from pipeline.download.error_rates import ErrorRateOptions, error_rate_warnings, merge_hosts
from pipeline.score.distribution import BINS, kept_fraction, merge, quantile
from pipeline.score.options import DEFAULT_THRESHOLDS, DEFAULT_TOP_FRACTIONS
from pipeline.score.shard_scorer import current_scores
from pipeline.shards.tar_reader import TarReadError
from schemas.contract import SchemaMismatch
from schemas.dedup import REASON_BENCHMARK
from schemas.raw_shard import STATUS_SUCCESS

log = logging.getLogger(__name__)
# Image sizes: log-spaced bins, 4 per octave from 1 px to 64k px (larger values land in the last bin).
SIZE_EDGES = tuple(2 ** (i / 4) for i in range(0, 16 * 4 + 1))
METRICS_JSONL = "metrics.jsonl"
METRICS_CSV = "metrics.csv"
TRAIN_SUMMARY = "summary.json"
# Errors that mean "this file is damaged or not what the stage writes", shown in the section.
READ_ERRORS = (OSError, ValueError, KeyError, TypeError, pa.ArrowException, tarfile.TarError, TarReadError)


@dataclass(frozen=True)
class Missing:
    """A section without data: its stage has not run (``error`` False) or its files are unreadable."""

    note: str
    error: bool = False


@dataclass(frozen=True)
class Outcome:
    """Rows of one download outcome: ``success`` or an error class, with the row status it had."""

    name: str
    status: str
    count: int


@dataclass(frozen=True)
class Downloads:
    """Download outcomes over the complete raw shards."""

    shards: int
    expected_shards: int | None  # from _input/_manifest.json; None when another tool wrote raw/
    rows: int
    status: dict[str, int]
    outcomes: tuple[Outcome, ...]  # most frequent first
    stored_bytes: int
    summary: dict[str, Any] | None  # raw/_summary.json: only once the download job finished
    # Unusual error rates over these shards (pipeline/download/error_rates.py), with the
    # thresholds the last download run used (the defaults before it finished).
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class SizeHistograms:
    """Widths and heights of the downloaded (original) and stored images, over ``SIZE_EDGES``."""

    count: int
    original_width: tuple[int, ...]
    original_height: tuple[int, ...]
    width: tuple[int, ...]
    height: tuple[int, ...]
    ranges: dict[str, tuple[int, int]]  # (smallest, largest) per series
    stored_sizes: tuple[tuple[str, int], ...]  # most frequent stored WxH, up to 5


@dataclass(frozen=True)
class Threshold:
    """The CLIP score rule build_shards applied (from final/manifest.json)."""

    rule: str  # "min_clip_score", "top_fraction" or "none"
    value: float | None  # the score cut (for top_fraction: the boundary sample's score)
    kept_of_scored: float | None  # fraction of scored samples the score rule keeps
    samples: int
    kept: int
    dropped: dict[str, int]


@dataclass(frozen=True)
class Scores:
    """The CLIP score distribution and the thresholds to show on it."""

    model: str
    pretrained: str
    scored: int
    shards_scored: int
    raw_shards: int
    finished: bool  # scores/_summary.json exists
    counts: tuple[int, ...]  # BINS fixed bins over [-1, 1] (pipeline.score.distribution)
    candidates: dict[float, float]  # threshold -> fraction of scored samples kept
    top_fractions: dict[float, float]  # kept fraction -> threshold
    median: float
    threshold: Threshold | Missing  # Missing when build_shards has not run
    # Caption languages (issue 18): (language, scored samples, kept by build_shards or None).
    languages: tuple[tuple[str, int, int | None], ...] = ()


@dataclass(frozen=True)
class Pair:
    """One image-caption pair shown in a grid."""

    uid: str
    raw_shard: int
    caption: str
    clip_score: float | None
    reason: str | None  # drop reason; None when kept
    image: bytes | None  # None when the raw tar no longer holds it


@dataclass(frozen=True)
class PairSamples:
    """Random kept and dropped pairs (from build_shards' selection records), or, before the build,
    the highest and lowest scoring pairs (``source`` "scores")."""

    source: str  # "selection" or "scores"
    kept: tuple[Pair, ...]
    dropped: tuple[Pair, ...]
    kept_total: int
    dropped_by_reason: dict[str, int]


@dataclass(frozen=True)
class BenchmarkMatch:
    benchmark_id: str
    uid: str
    distance: int


@dataclass(frozen=True)
class Dedup:
    """dedup/matches.parquet reduced to counts, plus the audit grid pages."""

    by_reason: dict[str, int]
    distances: dict[str, dict[int, int]]  # reason -> pHash distance -> samples
    benchmark_matches: tuple[BenchmarkMatch, ...]  # closest first, up to the table limit
    benchmark_total: int
    audit_pages: tuple[str, ...]  # readable PNG pages, as paths in the dataset's file system
    unreadable_pages: tuple[str, ...]
    summary: dict[str, Any] | None


@dataclass(frozen=True)
class Training:
    """The trainer's metrics (``corpusforge train --output``): name -> [(step, value)]."""

    folder: str
    source: str  # the file the metrics came from
    series: dict[str, tuple[tuple[int, float], ...]]
    summary: dict[str, Any] | None  # summary.json: written when the run finished
    skipped_lines: int


@dataclass(frozen=True)
class ReportData:
    """Everything the page shows."""

    dataset: str
    generated: str
    downloads: Downloads | Missing
    sizes: SizeHistograms | Missing
    scores: Scores | Missing
    pairs: PairSamples | Missing
    dedup: Dedup | Missing
    training: Training | Missing


T = TypeVar("T")


def guarded(what: str, read: Callable[[], T | Missing]) -> T | Missing:
    """Run one section's reader; a damaged input becomes an error note instead of a crash."""
    try:
        return read()
    except SchemaMismatch as exc:
        log.warning("report: %s: %s", what, exc)
        return Missing(f"{what}: {exc}", error=True)
    except READ_ERRORS as exc:
        log.warning("report: %s could not be read", what, exc_info=True)
        return Missing(f"{what} could not be read: {type(exc).__name__}: {exc}", error=True)


# ---------------------------------------------------------------------------------------- download


def collect_downloads(dataset: Dataset) -> tuple[Downloads | Missing, SizeHistograms | Missing]:
    """Outcomes by error class and image size histograms, over the complete raw shards."""
    shards = dataset.raw.complete_shards()
    if not shards:
        note = f"download has not run yet: {dataset.raw.path} has no complete raw shard"
        return Missing(note), Missing(note)
    manifest = dataset.input.manifest()
    expected = int(manifest["shard_count"]) if manifest else None
    outcomes: Counter[tuple[str, str]] = Counter()
    status: Counter[str] = Counter()
    rows = stored = 0
    series = ("original_width", "original_height", "width", "height")
    counts = {name: np.zeros(len(SIZE_EDGES) - 1, dtype=np.int64) for name in series}
    lows = dict.fromkeys(series, math.inf)
    highs = dict.fromkeys(series, 0)
    stored_sizes: Counter[str] = Counter()
    successes = 0
    markers = []
    for shard in tqdm(shards, desc="report: raw shards", unit="shard", disable=len(shards) < 20):
        stats = shard.stats()
        markers.append(stats)
        rows += int(stats["rows"])
        stored += int(stats.get("stored_bytes") or 0)
        status.update(stats["status"])
        table = shard.table(["status", "error_class", *series])
        grouped = table.group_by(["status", "error_class"]).aggregate([([], "count_all")])
        for st, err, n in zip(
            *(grouped.column(c).to_pylist() for c in ("status", "error_class", "count_all")), strict=True
        ):
            outcomes[(err or STATUS_SUCCESS, st)] += n
        ok = table.filter(pc.equal(table.column("status"), STATUS_SUCCESS))
        successes += ok.num_rows
        values = {name: ok.column(name).drop_null().to_numpy(zero_copy_only=False) for name in series}
        for name, v in values.items():
            if len(v):
                counts[name] += np.histogram(np.clip(v, 1, SIZE_EDGES[-1]), bins=SIZE_EDGES)[0]
                lows[name] = min(lows[name], int(v.min()))
                highs[name] = max(highs[name], int(v.max()))
        if len(values["width"]) == len(values["height"]) and len(values["width"]):
            pairs, n = np.unique(
                np.stack([values["width"], values["height"]], axis=1), axis=0, return_counts=True
            )
            stored_sizes.update(
                {f"{w}x{h}": int(c) for (w, h), c in zip(pairs.tolist(), n.tolist(), strict=True)}
            )
    summary = dataset.raw.summary()
    downloads = Downloads(
        shards=len(shards),
        expected_shards=expected,
        rows=rows,
        status=dict(status),
        outcomes=tuple(
            Outcome(name, st, n) for (name, st), n in sorted(outcomes.items(), key=lambda kv: (-kv[1], kv[0]))
        ),
        stored_bytes=stored,
        summary=summary,
        warnings=_error_rate_warnings(status, outcomes, markers, summary),
    )
    if successes == 0:
        return downloads, Missing("no image was downloaded: every row failed or was skipped", error=True)
    sizes = SizeHistograms(
        count=successes,
        original_width=tuple(counts["original_width"].tolist()),
        original_height=tuple(counts["original_height"].tolist()),
        width=tuple(counts["width"].tolist()),
        height=tuple(counts["height"].tolist()),
        ranges={n: (int(lows[n]), int(highs[n])) for n in series if highs[n] > 0},
        stored_sizes=tuple(stored_sizes.most_common(5)),
    )
    return downloads, sizes


def _error_rate_warnings(
    status: Counter[str],
    outcomes: Counter[tuple[str, str]],
    markers: list[dict[str, Any]],
    summary: dict[str, Any] | None,
) -> tuple[str, ...]:
    """The download's error-rate warnings over the complete shards, with the last run's thresholds."""
    recorded = (summary or {}).get("warning_thresholds") or {}
    known = {f.name for f in dataclasses.fields(ErrorRateOptions)}
    thresholds = ErrorRateOptions(**{k: v for k, v in recorded.items() if k in known})
    errors: Counter[str] = Counter()
    for (name, st), count in outcomes.items():
        if st != STATUS_SUCCESS:
            errors[name] += count
    found = error_rate_warnings(status, errors, merge_hosts(markers), thresholds)
    return tuple(w["message"] for w in found)


# ------------------------------------------------------------------------------------------ scores


def collect_scores(dataset: Dataset) -> Scores | Missing:
    """The score distribution (summary, or per-shard histograms of an unfinished run) and thresholds."""
    raw = dataset.raw.complete_indices()
    if not dataset.scores.exists():
        return Missing(f"score job has not run yet: {dataset.scores.path} does not exist")
    summary = dataset.scores.summary()
    stats = {shard: current_scores(dataset, shard) for shard in raw}
    per_shard = [s for s in stats.values() if s is not None]
    current = [shard for shard, s in stats.items() if s is not None]
    if summary is not None and summary.get("distribution", {}).get("count"):
        dist = summary["distribution"]
        counts = np.asarray(dist["histogram"]["counts"], dtype=np.int64)
        model, pretrained = summary["model"], summary["pretrained"]
        candidates = {float(t): float(f) for t, f in dist["kept_at_threshold"].items()}
        tops = {float(f): float(t) for f, t in dist["threshold_for_top_fraction"].items()}
    elif per_shard:
        # A run still going (or killed): the finished shards' histograms are exact for them.
        counts = merge([s["histogram"] for s in per_shard])
        model, pretrained = per_shard[0]["model"], per_shard[0]["pretrained"]
        candidates = {t: kept_fraction(counts, t) for t in DEFAULT_THRESHOLDS}
        tops = {f: quantile(counts, 1.0 - f) for f in DEFAULT_TOP_FRACTIONS}
    else:
        return Missing(f"score job has not finished a shard yet: {dataset.scores.path} holds no scores")
    if len(counts) != BINS or counts.sum() == 0:
        return Missing(f"{dataset.scores.path} holds no scored sample", error=counts.sum() != 0)
    return Scores(
        model=model,
        pretrained=pretrained,
        scored=int(counts.sum()),
        shards_scored=len(per_shard),
        raw_shards=len(raw),
        finished=summary is not None,
        counts=tuple(counts.tolist()),
        candidates=candidates,
        top_fractions=tops,
        median=quantile(counts, 0.5),
        threshold=guarded("final/manifest.json", lambda: collect_threshold(dataset, current)),
        languages=_languages(dataset, summary, per_shard),
    )


def _languages(
    dataset: Dataset, summary: dict[str, Any] | None, per_shard: list[dict[str, Any]]
) -> tuple[tuple[str, int, int | None], ...]:
    """Scored samples per caption language (score summary, else the finished shards' markers) and
    the samples build_shards kept of each (``final/_summary.json``), most frequent first."""
    scored: Counter[str] = Counter()
    if summary is not None and summary.get("languages"):
        scored.update(summary["languages"])
    else:
        for stats in per_shard:
            scored.update(stats.get("languages", {}))
    built = (dataset.final.summary() or {}).get("languages") or {}
    kept = {language: counts["kept"] for language, counts in built.items()}
    ordered = scored.most_common()
    return tuple((language, count, kept.get(language, 0) if built else None) for language, count in ordered)


def collect_threshold(dataset: Dataset, scored_shards: list[int]) -> Threshold | Missing:
    """The score rule recorded in final/manifest.json (written last by a finished build_shards).

    The fraction of scored samples the rule keeps is counted exactly from ``scores/`` (in double
    precision, as build_shards compares), not read off the binned histogram.
    """
    manifest = dataset.final.manifest()
    if manifest is None:
        return Missing(
            f"build_shards has not run yet ({dataset.storage.path(*dataset.final.manifest_file)} does not "
            "exist): no threshold chosen"
        )
    selection, tallies = manifest["selection"], manifest["counts"]
    boundary = selection.get("top_fraction_boundary")
    value: float | None = None
    kept: float | None = None
    if selection.get("min_clip_score") is not None:
        rule, value = "min_clip_score", float(selection["min_clip_score"])
        passing, total = _count_at_least(dataset, scored_shards, value)
        kept = passing / total if total else None
    elif selection.get("top_fraction") is not None:
        rule = "top_fraction"
        if boundary:
            _, total = _count_at_least(dataset, scored_shards, math.inf)
            value, kept = float(boundary["clip_score"]), int(boundary["keep"]) / total if total else None
        else:
            kept = 1.0  # no boundary: the fraction keeps every scored sample
    else:
        rule = "none"
    return Threshold(
        rule=rule,
        value=value,
        kept_of_scored=kept,
        samples=int(tallies["samples"]),
        kept=int(tallies["kept"]),
        dropped={str(k): int(v) for k, v in tallies["dropped"].items()},
    )


def _count_at_least(dataset: Dataset, shards: list[int], value: float) -> tuple[int, int]:
    """(samples with clip_score >= value, samples scored) over the scores of ``shards``."""
    passing = total = 0
    for shard in shards:
        table = dataset.scores.shard(shard).table(["clip_score"])
        scores = table.column("clip_score").to_numpy().astype(np.float64)
        passing += int((scores >= value).sum())
        total += len(scores)
    return passing, total


# ------------------------------------------------------------------------------------------- pairs


class _BottomK:
    """A uniform random sample of k rows: the k smallest random keys seen (exact, mergeable)."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.keys: list[tuple[float, Any]] = []

    def offer(self, keys: np.ndarray, rows: list[Any]) -> None:
        if self.k <= 0 or not rows:
            return
        best = np.argsort(keys, kind="stable")[: self.k]
        self.keys = sorted([*self.keys, *((float(keys[i]), rows[i]) for i in best)], key=lambda p: p[0])[
            : self.k
        ]

    def rows(self) -> list[Any]:
        return [row for _, row in self.keys]


def collect_pairs(dataset: Dataset, samples: int, seed: int) -> PairSamples | Missing:
    """Random kept and dropped pairs from final/_selection/, else top/bottom scores, with images."""
    if dataset.final.manifest() is not None:
        return _selection_pairs(dataset, samples, seed)
    if dataset.scores.table_indices():
        return _score_pairs(dataset, samples)
    return Missing(
        "build_shards has not run yet (no final/manifest.json) and nothing is scored: "
        "no kept or dropped pairs to show"
    )


def _selection_pairs(dataset: Dataset, samples: int, seed: int) -> PairSamples:
    rng = np.random.default_rng(seed)
    kept = _BottomK(samples)
    dropped: dict[str, _BottomK] = {}
    reasons: Counter[str] = Counter()
    kept_total = 0
    columns = ["uid", "raw_shard", "reason", "clip_score"]
    parts = dataset.final.selection_indices()
    for index in tqdm(parts, desc="report: selection", unit="part", disable=len(parts) < 20):
        table = dataset.final.selection(index).read(columns)
        rows = list(zip(*(table.column(c).to_pylist() for c in columns), strict=True))
        keys = rng.random(len(rows))
        groups: dict[str | None, list[int]] = {}
        for i, row in enumerate(rows):
            groups.setdefault(row[2], []).append(i)
        for reason, index in groups.items():
            chosen = [rows[i] for i in index]
            if reason is None:
                kept_total += len(index)
                kept.offer(keys[index], chosen)
            else:
                reasons[reason] += len(index)
                dropped.setdefault(reason, _BottomK(samples)).offer(keys[index], chosen)
    # Round-robin over reasons, most frequent first, so every reason shows up.
    queues = [dropped[r].rows() for r, _ in reasons.most_common()]
    shown: list[tuple[Any, ...]] = []
    while len(shown) < samples and any(queues):
        for queue in queues:
            if queue and len(shown) < samples:
                shown.append(queue.pop(0))
    wanted = [(u, s, sc, None) for u, s, _, sc in kept.rows()] + [(u, s, sc, r) for u, s, r, sc in shown]
    pairs = _load_pairs(dataset, wanted)
    return PairSamples(
        source="selection",
        kept=tuple(p for p in pairs if p.reason is None),
        dropped=tuple(p for p in pairs if p.reason is not None),
        kept_total=kept_total,
        dropped_by_reason=dict(reasons.most_common()),
    )


def _score_pairs(dataset: Dataset, samples: int) -> PairSamples:
    """Before a build: the highest and lowest scoring pairs (ties broken by uid)."""
    top: list[tuple[float, str, int]] = []
    bottom: list[tuple[float, str, int]] = []
    total = 0
    for shard in dataset.scores.table_indices():
        table = dataset.scores.shard(shard).table(["uid", "clip_score"])
        rows = [
            (float(s), u, shard)
            for u, s in zip(*(table.column(c).to_pylist() for c in ("uid", "clip_score")), strict=True)
        ]
        total += len(rows)
        top = sorted([*top, *rows], key=lambda r: (-r[0], r[1]))[:samples]
        bottom = sorted([*bottom, *rows], key=lambda r: (r[0], r[1]))[:samples]
    wanted = [(u, sh, s, None) for s, u, sh in top]
    wanted += [(u, sh, s, "lowest_clip_score") for s, u, sh in bottom if (s, u, sh) not in top]
    pairs = _load_pairs(dataset, wanted)
    return PairSamples(
        source="scores",
        kept=tuple(p for p in pairs if p.reason is None),
        dropped=tuple(p for p in pairs if p.reason is not None),
        kept_total=total,
        dropped_by_reason={},
    )


def _load_pairs(dataset: Dataset, wanted: list[tuple[str, int, float | None, str | None]]) -> list[Pair]:
    """Image and caption of each (uid, raw_shard, score, reason) from the raw tars, in order."""
    by_shard: dict[int, set[str]] = {}
    for uid, shard, _, _ in wanted:
        by_shard.setdefault(shard, set()).add(uid)
    found: dict[str, tuple[bytes | None, str]] = {}
    for shard, uids in sorted(by_shard.items()):
        found.update(_read_members(dataset, shard, uids))
    pairs = []
    for uid, shard, score, reason in wanted:
        image, caption = found.get(uid, (None, ""))
        pairs.append(Pair(uid, shard, caption, None if score is None else float(score), reason, image))
    return pairs


def _read_members(
    dataset: Dataset, shard: int, uids: set[str]
) -> Iterator[tuple[str, tuple[bytes | None, str]]]:
    """Stream through raw/NNNNN.tar for the image and caption of ``uids`` (other data skipped)."""
    tar = dataset.raw.shard(shard).tar
    if not tar.exists():
        return
    images: dict[str, bytes] = {}
    captions: dict[str, str] = {}
    for key, ext, data in tar.members((*IMAGE_EXTS, "txt"), uids):
        if ext == "txt":
            captions[key] = data.decode("utf-8", errors="replace")
        else:
            images[key] = data
        if len(images) == len(uids) and len(captions) == len(uids):
            break
    for uid in uids:
        yield uid, (images.get(uid), captions.get(uid, ""))


# ------------------------------------------------------------------------------------------- dedup


def collect_dedup(dataset: Dataset, table_limit: int = 50) -> Dedup | Missing:
    """Counts and distances by reason from dedup/matches.parquet, and the audit pages."""
    matches = dataset.dedup.matches
    if not matches.exists():
        return Missing(f"dedup job has not run yet: {matches.path} does not exist")
    table = matches.read(["uid", "reason", "match_id", "distance"])
    by_reason: Counter[str] = Counter()
    distances: dict[str, Counter[int]] = {}
    bench: list[BenchmarkMatch] = []
    for uid, reason, match_id, distance in zip(
        *(table.column(c).to_pylist() for c in ("uid", "reason", "match_id", "distance")), strict=True
    ):
        by_reason[reason] += 1
        distances.setdefault(reason, Counter())[int(distance)] += 1
        if reason == REASON_BENCHMARK:
            bench.append(BenchmarkMatch(match_id, uid, int(distance)))
    bench.sort(key=lambda m: (m.distance, m.benchmark_id, m.uid))
    pages, unreadable = [], []
    for path in dataset.dedup.audit_pages():
        (pages if _is_png(dataset.storage.fs, path) else unreadable).append(path)
    return Dedup(
        by_reason=dict(by_reason.most_common()),
        distances={r: dict(sorted(c.items())) for r, c in distances.items()},
        benchmark_matches=tuple(bench[:table_limit]),
        benchmark_total=len(bench),
        audit_pages=tuple(pages),
        unreadable_pages=tuple(unreadable),
        summary=dataset.dedup.summary(),
    )


def _is_png(fs: Any, path: str) -> bool:
    """True when ``path`` is a complete PNG that decodes."""
    try:
        with fs.open(path, "rb") as handle, Image.open(handle) as image:
            if image.format != "PNG":
                return False
            image.load()
        return True
    except (OSError, ValueError, Image.DecompressionBombError):
        return False


# ---------------------------------------------------------------------------------------- training


def collect_training(train_dir: str | None) -> Training | Missing:
    """Series from the trainer's metrics.jsonl (or metrics.csv, long format) in ``train_dir``."""
    if not train_dir:
        return Missing("no --train-dir given: pass the --output folder of `corpusforge train`")
    fs, root = fsspec.core.url_to_fs(train_dir)
    root = root.rstrip("/")
    fs.invalidate_cache(root)  # s3fs/gcsfs listings cached before the trainer wrote are stale
    summary = None
    if fs.exists(f"{root}/{TRAIN_SUMMARY}"):
        with fs.open(f"{root}/{TRAIN_SUMMARY}", "r", encoding="utf-8") as handle:
            summary = json.load(handle)
    for name, parse in ((METRICS_JSONL, _parse_jsonl), (METRICS_CSV, _parse_csv)):
        path = f"{root}/{name}"
        if fs.exists(path):
            with fs.open(path, "r", encoding="utf-8") as handle:
                points, skipped = parse(handle.read())
            if points:
                series: dict[str, dict[int, float]] = {}
                for step, metric, value in points:
                    series.setdefault(metric, {})[step] = value  # a resumed run's later value wins
                return Training(
                    folder=train_dir,
                    source=path,
                    series={m: tuple(sorted(v.items())) for m, v in sorted(series.items())},
                    summary=summary,
                    skipped_lines=skipped,
                )
    return Missing(f"training has not logged metrics yet: no {METRICS_JSONL} or {METRICS_CSV} in {train_dir}")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _parse_jsonl(text: str) -> tuple[list[tuple[int, str, float]], int]:
    """(step, name, value) of every numeric metric; unreadable lines (a crash mid-write) are counted."""
    points, skipped = [], 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            step = int(record["step"])
        except (ValueError, KeyError, TypeError):
            skipped += 1
            continue
        for name, value in record.items():
            number = _number(value)
            if name not in ("step", "time") and number is not None:
                points.append((step, str(name), number))
    return points, skipped


def _parse_csv(text: str) -> tuple[list[tuple[int, str, float]], int]:
    points, skipped = [], 0
    for row in csv.DictReader(io.StringIO(text)):
        try:
            step, number = int(row["step"]), _number(row["value"])
        except (ValueError, KeyError, TypeError):
            skipped += 1
            continue
        if number is None or not row.get("name"):
            skipped += 1
            continue
        points.append((step, row["name"], number))
    return points, skipped
