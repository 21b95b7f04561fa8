"""``corpusforge report --dataset DIR``: read every stage's outputs, draw, write ``DIR/report/``.

On local disk the report is written to a temporary folder and moved into place, so
``DIR/report/`` is always a complete page: ``index.html`` with its PNG figures in ``figures/``.
Object stores have no folder rename: there every figure is written atomically first, then
``index.html`` (so the page never names a figure that is not there yet), then figures the new
page does not show are deleted. ``DIR`` and ``--train-dir`` are local paths or any fsspec URL.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pipeline.dataset import Dataset
from pipeline.errors import UserInputError
from pipeline.remote import is_local
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
from pipeline.storage import Storage

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
    files = {sources[key]: png for key, png in pngs.items()}
    files[INDEX] = page.encode("utf-8")  # last: see _write_in_place
    storage, local = dataset.storage, is_local(dataset.storage.url)
    if local:
        _write_and_rename(storage, dataset.report_folder, files)
    else:
        _write_in_place(storage.child(dataset.report_folder), files)
    final = storage.path(dataset.report_folder) if local else storage.display(dataset.report_folder)
    sections = {}
    for key, _ in SECTIONS:
        section = getattr(data, key)
        sections[key] = (
            ("could not be read" if section.error else "not run yet")
            if isinstance(section, Missing)
            else "ok"
        )
    return ReportResult(index=f"{final}/{INDEX}", figures=tuple(sorted(sources.values())), sections=sections)


def _write_and_rename(storage: Storage, folder: str, files: dict[str, bytes]) -> None:
    """Local disk: every file into a temporary folder, which then replaces ``folder``."""
    fs = storage.fs
    final = storage.path(folder)
    temp = storage.temp_name(final)
    try:
        fs.makedirs(f"{temp}/{FIGURES_DIR}", exist_ok=True)
        for name, data in files.items():
            fs.pipe_file(f"{temp}/{name}", data)
        storage.remove(folder)
        fs.mv(temp, final, recursive=True)
    finally:
        if fs.exists(temp):
            fs.rm(temp, recursive=True)


def _write_in_place(report: Storage, files: dict[str, bytes]) -> None:
    """Object stores: each file atomically, in order (index.html last), then stale figures deleted."""
    report.remove_temporaries()
    report.remove_temporaries(FIGURES_DIR)
    for name, data in files.items():
        report.write_bytes(data, *name.split("/"))
    shown = {name.rsplit("/", 1)[-1] for name in files if name.startswith(f"{FIGURES_DIR}/")}
    for name in report.names(FIGURES_DIR):
        if name not in shown:
            report.remove(FIGURES_DIR, name)


def format_result(result: ReportResult) -> str:
    """One line per section, for the command's final summary."""
    lines = [f"report written to {result.index} ({len(result.figures)} figures)"]
    lines += [f"  {key:<10} {state}" for key, state in result.sections.items()]
    return "\n".join(lines)
