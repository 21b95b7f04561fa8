"""The report's figures as PNG bytes, drawn with matplotlib's Agg canvas (no display, no pyplot state)."""

from __future__ import annotations

import io
import math
import textwrap
import warnings
from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator
from PIL import Image, ImageOps

from pipeline.report.collect import (
    SIZE_EDGES,
    Dedup,
    Downloads,
    Pair,
    Scores,
    SizeHistograms,
    Threshold,
    Training,
)
from pipeline.score.distribution import BINS
from schemas.raw_shard import STATUS_FAILED, STATUS_SKIPPED, STATUS_SUCCESS

STATUS_COLOURS = {STATUS_SUCCESS: "#2a9d4b", STATUS_FAILED: "#d1495b", STATUS_SKIPPED: "#8d99ae"}
GRID_COLUMNS = 4
THUMBNAIL = 192
CAPTION_WIDTH = 34  # characters per caption line under a thumbnail
CAPTION_LINES = 4
SCORE_BARS = 80  # about this many bars over the observed score range


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # Captions come from the web: glyphs DejaVu Sans lacks are drawn as boxes, not warned about.
        warnings.filterwarnings("ignore", message=r"Glyph .* missing from")
        figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _plain(text: str) -> str:
    """``text`` with control characters replaced (matplotlib draws them as garbage or fails)."""
    return "".join(ch if ch.isprintable() else " " for ch in text)


def outcomes_png(downloads: Downloads) -> bytes:
    """Horizontal bars: rows per outcome (success or error class), coloured by row status."""
    outcomes = list(reversed(downloads.outcomes))  # barh draws bottom-up: most frequent on top
    figure = Figure(figsize=(8, 1.2 + 0.32 * max(1, len(outcomes))), layout="constrained")
    ax = figure.add_subplot()
    ax.barh(
        [o.name for o in outcomes],
        [o.count for o in outcomes],
        color=[STATUS_COLOURS.get(o.status, "#444444") for o in outcomes],
    )
    total = max(1, downloads.rows)
    for y, outcome in enumerate(outcomes):
        ax.text(outcome.count, y, f" {outcome.count:,} ({100 * outcome.count / total:.1f}%)", va="center")
    ax.set_xlabel(f"input rows (of {downloads.rows:,} in {downloads.shards} complete raw shards)")
    ax.set_xlim(0, max((o.count for o in outcomes), default=1) * 1.35)
    handles = [
        ax.bar(0, 0, color=colour, label=status)
        for status, colour in STATUS_COLOURS.items()
        if any(o.status == status for o in outcomes)
    ]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="row status")
    ax.set_title("Download outcomes by error class")
    return _png(figure)


def sizes_png(sizes: SizeHistograms) -> bytes:
    """Two panels of log-binned histograms: original (downloaded) and stored widths and heights."""
    figure = Figure(figsize=(10, 3.6), layout="constrained")
    edges = np.asarray(SIZE_EDGES)
    panels = (
        ("original (as downloaded)", sizes.original_width, sizes.original_height),
        ("stored (after resizing)", sizes.width, sizes.height),
    )
    for i, (title, widths, heights) in enumerate(panels):
        ax = figure.add_subplot(1, 2, i + 1)
        ax.stairs(widths, edges, label="width", color="#1f77b4", linewidth=1.8)
        ax.stairs(heights, edges, label="height", color="#ff7f0e", linewidth=1.8, linestyle="--")
        used = np.nonzero(np.asarray(widths) + np.asarray(heights))[0]
        if len(used):
            ax.set_xlim(edges[max(0, used[0] - 2)], edges[min(len(edges) - 1, used[-1] + 3)])
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.set_xlabel("pixels")
        ax.set_ylabel("images")
        ax.set_title(f"{title}: {sizes.count:,} images")
        ax.legend()
    return _png(figure)


def _rebinned(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The BINS fixed bins merged into about SCORE_BARS bars over the used range: (edges, counts)."""
    used = np.nonzero(counts)[0]
    first, last = int(used[0]), int(used[-1]) + 1
    factor = max(1, math.ceil((last - first) / SCORE_BARS))
    first = max(0, first - factor)  # an empty bar of margin on each side
    bars = math.ceil((min(BINS, last + factor) - first) / factor)
    padded = np.zeros(bars * factor, dtype=np.int64)
    chunk = counts[first : first + bars * factor]
    padded[: len(chunk)] = chunk
    edges = -1.0 + (2.0 / BINS) * (first + factor * np.arange(bars + 1))
    return edges, padded.reshape(bars, factor).sum(axis=1)


def scores_png(scores: Scores) -> bytes:
    """Score histogram with the threshold build_shards applied (or the candidate thresholds)."""
    edges, merged = _rebinned(np.asarray(scores.counts))
    figure = Figure(figsize=(9, 4), layout="constrained")
    ax = figure.add_subplot()
    ax.stairs(merged, edges, fill=True, color="#9ecae1", edgecolor="#3182bd")
    ax.set_xlabel(f"CLIP score (cosine similarity; {scores.model}, {scores.pretrained})")
    ax.set_ylabel("samples")
    threshold = scores.threshold
    if isinstance(threshold, Threshold) and threshold.value is not None:
        ax.axvspan(threshold.value, edges[-1], color="#2a9d4b", alpha=0.12, label="kept by the score rule")
        ax.axvline(threshold.value, color="#2a9d4b", linewidth=2, label=f"threshold {threshold.value:.4f}")
        kept = threshold.kept_of_scored
        ax.set_title(
            f"{scores.scored:,} scored samples; {threshold.rule} keeps "
            + (f"{100 * kept:.1f}%" if kept is not None else "?")
            + f" (build kept {threshold.kept:,} of {threshold.samples:,} after every rule)"
        )
        ax.legend(loc="upper left")
    else:
        top = max(1, int(merged.max()))
        for i, (value, fraction) in enumerate(sorted(scores.candidates.items())):
            ax.axvline(value, color="#888888", linestyle="--", linewidth=1)
            ax.text(
                value,
                top * (0.98 - 0.07 * (i % 2)),
                f" {value:g}: {100 * fraction:.0f}%",
                fontsize=8,
                va="top",
                color="#444444",
            )
        reason = (
            "build_shards ran without a score rule" if isinstance(threshold, Threshold) else "no build yet"
        )
        ax.set_title(
            f"{scores.scored:,} scored samples; candidate thresholds with the fraction each keeps ({reason})"
        )
    return _png(figure)


def _thumbnail(data: bytes | None) -> np.ndarray | None:
    if data is None:
        return None
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.draft("RGB", (THUMBNAIL, THUMBNAIL))
            return np.asarray(ImageOps.contain(image.convert("RGB"), (THUMBNAIL, THUMBNAIL)))
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def _caption(text: str) -> str:
    lines = textwrap.wrap(_plain(text), CAPTION_WIDTH) or ["(empty caption)"]
    if len(lines) > CAPTION_LINES:
        lines = [*lines[: CAPTION_LINES - 1], lines[CAPTION_LINES - 1][: CAPTION_WIDTH - 1] + "\u2026"]
    return "\n".join(lines)


def pairs_png(pairs: Sequence[Pair], title: str) -> bytes:
    """A grid of thumbnails, each with its score (and drop reason) above and its caption below."""
    rows = max(1, math.ceil(len(pairs) / GRID_COLUMNS))
    figure = Figure(figsize=(3.1 * GRID_COLUMNS, 3.7 * rows + 0.4), layout="constrained")
    figure.suptitle(title, parse_math=False)
    for i in range(rows * GRID_COLUMNS):
        ax = figure.add_subplot(rows, GRID_COLUMNS, i + 1)
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= len(pairs):
            ax.set_axis_off()
            continue
        pair = pairs[i]
        pixels = _thumbnail(pair.image)
        if pixels is None:
            ax.set_xlim(0, THUMBNAIL)
            ax.set_ylim(THUMBNAIL, 0)
            ax.set_aspect("equal")
            ax.text(
                THUMBNAIL / 2, THUMBNAIL / 2, "image not readable", ha="center", va="center", color="#d1495b"
            )
        else:
            ax.imshow(pixels)
            # Every thumbnail in the same square box, so captions line up across a row.
            h, w = pixels.shape[:2]
            ax.set_xlim(-(THUMBNAIL - w) / 2 - 0.5, w + (THUMBNAIL - w) / 2 - 0.5)
            ax.set_ylim(h + (THUMBNAIL - h) / 2 - 0.5, -(THUMBNAIL - h) / 2 - 0.5)
        score = "unscored" if pair.clip_score is None else f"score {pair.clip_score:.3f}"
        ax.set_title(score + (f"\n{pair.reason}" if pair.reason else ""), fontsize=9, parse_math=False)
        ax.set_xlabel(_caption(pair.caption), fontsize=8, parse_math=False)
    return _png(figure)


def dedup_distances_png(dedup: Dedup) -> bytes:
    """Samples per pHash distance, one bar series per dedup reason."""
    figure = Figure(figsize=(8, 3.4), layout="constrained")
    ax = figure.add_subplot()
    reasons = list(dedup.distances)
    width = 0.8 / max(1, len(reasons))
    for i, reason in enumerate(reasons):
        distances = dedup.distances[reason]
        ax.bar(
            [d - 0.4 + width * (i + 0.5) for d in distances],
            list(distances.values()),
            width=width,
            label=f"{reason} ({dedup.by_reason[reason]:,})",
        )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("pHash distance (bits of 64)")
    ax.set_ylabel("samples to drop")
    ax.set_title("dedup/matches.parquet: distance to the matched benchmark image or kept duplicate")
    ax.legend()
    return _png(figure)


TRAIN_PANELS = (
    ("train/loss", "contrastive loss"),
    ("train/lr", "learning rate"),
    ("train/logit_scale", "logit scale"),
    ("train/samples_per_s", "samples/s"),
)


def _plot_series(ax: Axes, points: Sequence[tuple[int, float]], label: str) -> None:
    # Markers when points are few: an eval logged once at the end is still visible.
    marker = "o" if len(points) <= 20 else None
    ax.plot([s for s, _ in points], [v for _, v in points], marker=marker, markersize=4, label=label)


def training_png(training: Training) -> bytes | None:
    """One panel per logged training series (loss, learning rate, ...); None when none was logged."""
    panels = [(name, label) for name, label in TRAIN_PANELS if name in training.series]
    if not panels:
        return None
    figure = Figure(figsize=(4.2 * len(panels), 3.4), layout="constrained")
    for i, (name, label) in enumerate(panels):
        ax = figure.add_subplot(1, len(panels), i + 1)
        _plot_series(ax, training.series[name], label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("optimiser step")
        ax.set_title(label)
        ax.grid(alpha=0.3)
    return _png(figure)


def evaluation_png(training: Training) -> bytes | None:
    """Zero-shot accuracy and retrieval recall against the step; None when no eval was logged."""
    groups = {
        "zero-shot accuracy": [n for n in training.series if "/zeroshot_top" in n],
        "retrieval recall": [n for n in training.series if "_R@" in n],
    }
    groups = {title: names for title, names in groups.items() if names}
    if not groups:
        return None
    figure = Figure(figsize=(6 * len(groups), 3.8), layout="constrained")
    for i, (title, names) in enumerate(groups.items()):
        ax = figure.add_subplot(1, len(groups), i + 1)
        for name in sorted(names):
            _plot_series(ax, training.series[name], name)
        ax.set_ylim(0, 1.02)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("optimiser step")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _png(figure)
