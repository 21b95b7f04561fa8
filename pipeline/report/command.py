"""``corpusforge report --dataset DIR``: read every stage's outputs, draw, write ``DIR/report/``.

The report is written to a temporary folder and moved into place, so ``DIR/report/`` is always a
complete page: ``index.html`` with its PNG figures in ``figures/``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pipeline.dataset import Dataset
from pipeline.errors import UserInputError
from pipeline.report import figures as draw
from pipeline.report.collect import (
    Missing,
    ReportData,
    collect_dedup,
    collect_downloads,
    collect_pairs,
    collect_scores,
    collect_training,
    guarded,
)
from pipeline.report.html import SECTIONS, render_page
from pipeline.report.options import ReportOptions

log = logging.getLogger(__name__)

FIGURES_DIR = "figures"
INDEX = "index.html"


@dataclass(frozen=True)
class ReportResult:
    """Where the page went, which figures it has, and each section's state."""

    index: str
    figures: tuple[str, ...]
    sections: dict[str, str]  # section key -> "ok", "not run yet" or "could not be read"


def _display_path(url: str) -> str:
    """Local paths made absolute (the page says which dataset it describes); URLs as given."""
    return url if "://" in url else str(Path(url).resolve())


def collect(options: ReportOptions) -> ReportData:
    """Every section's data; a stage that has not run gives its note, never an exception."""
    dataset = Dataset(options.dataset)
    if not dataset.exists():
        raise UserInputError(f"--dataset {options.dataset}: no such dataset directory")
    generated = datetime.now(UTC).isoformat(timespec="seconds")
    downloads = guarded("raw/", lambda: collect_downloads(dataset))
    if isinstance(downloads, Missing):
        downloads, sizes = downloads, downloads
    else:
        downloads, sizes = downloads
    return ReportData(
        dataset=_display_path(options.dataset),
        generated=generated,
        downloads=downloads,
        sizes=sizes,
        scores=guarded("scores/", lambda: collect_scores(dataset)),
        pairs=guarded(
            "kept and dropped pairs", lambda: collect_pairs(dataset, options.samples, options.seed)
        ),
        dedup=guarded("dedup/", lambda: collect_dedup(dataset)),
        training=guarded(f"--train-dir {options.train_dir}", lambda: collect_training(options.train_dir)),
    )


def render_figures(data: ReportData, dataset: Dataset) -> dict[str, bytes]:
    """PNG bytes per figure key, for the sections that have data (audit pages are copied as they are)."""
    out: dict[str, bytes] = {}
    if not isinstance(data.downloads, Missing):
        out["downloads"] = draw.outcomes_png(data.downloads)
    if not isinstance(data.sizes, Missing):
        out["sizes"] = draw.sizes_png(data.sizes)
    if not isinstance(data.scores, Missing):
        out["scores"] = draw.scores_png(data.scores)
    if not isinstance(data.pairs, Missing):
        before = data.pairs.source == "scores"
        if data.pairs.kept:
            out["kept"] = draw.pairs_png(data.pairs.kept, "highest scores" if before else "kept pairs")
        if data.pairs.dropped:
            out["dropped"] = draw.pairs_png(
                data.pairs.dropped, "lowest scores" if before else "dropped pairs"
            )
    if not isinstance(data.dedup, Missing):
        if data.dedup.distances:
            out["dedup_distances"] = draw.dedup_distances_png(data.dedup)
        for path in data.dedup.audit_pages:
            number = path.rsplit("/", 1)[-1].removeprefix("page_").removesuffix(".png")
            out[f"dedup_audit_{number}"] = dataset.storage.fs.cat_file(path)
    if not isinstance(data.training, Missing):
        for key, figure in (
            ("training", draw.training_png(data.training)),
            ("evaluation", draw.evaluation_png(data.training)),
        ):
            if figure is not None:
                out[key] = figure
    return out


def write_report(options: ReportOptions) -> ReportResult:
    """Collect, draw and write ``DIR/report/index.html`` with ``DIR/report/figures/*.png``."""
    data = collect(options)
    dataset = Dataset(options.dataset)
    pngs = render_figures(data, dataset)
    sources = {key: f"{FIGURES_DIR}/{key}.png" for key in pngs}
    page = render_page(data, sources)
    storage, fs = dataset.storage, dataset.storage.fs
    final = storage.path(dataset.report_folder)
    temp = storage.temp_name(final)
    try:
        fs.makedirs(f"{temp}/{FIGURES_DIR}", exist_ok=True)
        for key, png in pngs.items():
            fs.pipe_file(f"{temp}/{sources[key]}", png)
        fs.pipe_file(f"{temp}/{INDEX}", page.encode("utf-8"))
        storage.remove(dataset.report_folder)
        fs.mv(temp, final, recursive=True)
    finally:
        if fs.exists(temp):
            fs.rm(temp, recursive=True)
    sections = {}
    for key, _ in SECTIONS:
        section = getattr(data, key)
        sections[key] = (
            ("could not be read" if section.error else "not run yet")
            if isinstance(section, Missing)
            else "ok"
        )
    return ReportResult(index=f"{final}/{INDEX}", figures=tuple(sorted(sources.values())), sections=sections)


def format_result(result: ReportResult) -> str:
    """One line per section, for the command's final summary."""
    lines = [f"report written to {result.index} ({len(result.figures)} figures)"]
    lines += [f"  {key:<10} {state}" for key, state in result.sections.items()]
    return "\n".join(lines)
