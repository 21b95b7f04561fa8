"""``corpusforge report`` on datasets made by the real jobs, checked on disk and in headless Chromium."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.cli import main
from pipeline.errors import UserInputError
from pipeline.report.command import write_report
from pipeline.report.options import ReportOptions
from pipeline.train.metrics import MetricsLogger
from tests.report.browser import broken_images_on_disk, is_png, load_in_chromium, parse_images
from tests.report.conftest import Pipeline, all_scores, stage_copy

EVERY_FIGURE = {
    "figures/downloads.png",
    "figures/sizes.png",
    "figures/scores.png",
    "figures/kept.png",
    "figures/dropped.png",
    "figures/dedup_distances.png",
    "figures/dedup_audit_000.png",
    "figures/training.png",
    "figures/evaluation.png",
}


def report(dataset: Path, train_dir: Path | None = None, **options: object) -> tuple[Path, str, dict]:
    result = write_report(ReportOptions(str(dataset), str(train_dir) if train_dir else None, **options))
    index = Path(result.index)
    assert index == dataset / "report" / "index.html"
    return index, index.read_text(encoding="utf-8"), result.sections


def assert_every_image_loads(index: Path) -> int:
    """Every <img> is a PNG on disk inside report/, and Chromium loads every one; returns their number."""
    images, _ = parse_images(index.read_text(encoding="utf-8"))
    assert broken_images_on_disk(index) == []
    browser = load_in_chromium(index)
    assert browser.broken == []
    assert browser.checked == len(images)
    return len(images)


def section(page: str, key: str) -> str:
    start = page.index(f'<section id="{key}">')
    return page[start : page.index("</section>", start)]


def selection_records(dataset: Path) -> dict[str, dict]:
    table = pq.read_table(dataset / "final" / "_selection")
    return {r["uid"]: r for r in table.to_pylist()}


def raw_captions(dataset: Path) -> dict[str, str]:
    rows = [r for p in sorted((dataset / "raw").glob("[0-9]*.parquet")) for r in pq.read_table(p).to_pylist()]
    return {r["uid"]: r["caption"] for r in rows if r["status"] == "success"}


def table_rows(section_html: str, heading: str) -> list[str]:
    """uids of the pair table that follows ``heading`` in a section."""
    start = section_html.index(heading)
    table = section_html[section_html.index("<table>", start) : section_html.index("</table>", start)]
    return [cell.split("</code>")[0] for cell in table.split("<td><code>")[1:]]


@pytest.mark.slow
def test_full_pipeline_report_shows_every_stage(pipeline: Pipeline, tmp_path: Path) -> None:
    dataset = stage_copy(pipeline.dataset, tmp_path / "dataset", ("raw", "scores", "dedup", "final"))
    before = datetime.now(UTC).replace(microsecond=0)
    index, page, sections = report(dataset, pipeline.train)
    after = datetime.now(UTC)
    assert set(sections.values()) == {"ok"}, sections
    assert "Not run yet" not in page and "Could not show" not in page

    # Every figure is a PNG file next to the page, and the page shows exactly those.
    figures = {f"figures/{p.name}" for p in (index.parent / "figures").iterdir()}
    assert figures == EVERY_FIGURE
    assert all(is_png((index.parent / f).read_bytes()) for f in figures)
    images, _ = parse_images(page)
    assert {i["src"] for i in images} == figures
    assert assert_every_image_loads(index) == len(EVERY_FIGURE)

    # The page names the dataset and when it was generated.
    assert f'<code id="dataset">{dataset.resolve()}</code>' in page
    stamp = page.split('<time id="generated" datetime="')[1].split('"')[0]
    assert before <= datetime.fromisoformat(stamp) <= after

    # The threshold is the one build_shards applied, with the fraction of scored samples it keeps.
    scores = all_scores(dataset)
    kept_fraction = sum(s >= pipeline.min_clip_score for s in scores.values()) / len(scores)
    manifest = json.loads((dataset / "final" / "manifest.json").read_text())
    text = section(page, "scores")
    assert f"clip_score &ge; {pipeline.min_clip_score:.4f}, which keeps {100 * kept_fraction:.1f}%" in text
    assert f"kept {manifest['counts']['kept']:,} of {manifest['counts']['samples']:,}" in text

    # Kept and dropped pairs are what build_shards recorded, with their captions and drop reasons.
    records = selection_records(dataset)
    captions = raw_captions(dataset)
    pairs = section(page, "pairs")
    kept, dropped = table_rows(pairs, "<h3>Kept"), table_rows(pairs, "<h3>Dropped")
    assert len(kept) == 12 and len(dropped) == 12
    assert all(records[uid]["reason"] is None for uid in kept)
    assert all(records[uid]["reason"] is not None for uid in dropped)
    for uid in kept + dropped:
        assert captions[uid] in pairs
    reasons = {r["reason"] for r in records.values() if r["reason"]}
    assert {records[uid]["reason"] for uid in dropped} == reasons  # every drop reason is shown

    # The dedup section lists the benchmark duplicates of matches.parquet.
    matches = pq.read_table(dataset / "dedup" / "matches.parquet").to_pylist()
    benchmark = [m for m in matches if m["reason"] == "benchmark_duplicate"]
    assert benchmark
    for match in benchmark:
        assert match["uid"] in section(page, "dedup") and match["match_id"] in section(page, "dedup")

    # Training: the metrics file the trainer wrote, and its last eval value.
    training = section(page, "training")
    last_eval = [json.loads(line) for line in (pipeline.train / "metrics.jsonl").read_text().splitlines()][-1]
    assert "world/zeroshot_top1" in last_eval
    assert f"{last_eval['world/zeroshot_top1']:.4g}" in training


@pytest.mark.slow
@pytest.mark.parametrize(
    ("stages", "expected"),
    [
        ((), {"downloads", "sizes", "scores", "pairs", "dedup"}),
        (("raw",), {"scores", "pairs", "dedup"}),
        (("raw", "scores"), {"dedup"}),
        (("raw", "scores", "dedup"), set()),
    ],
)
def test_stages_not_run_yet_are_notes(
    pipeline: Pipeline, tmp_path: Path, stages: tuple[str, ...], expected: set[str]
) -> None:
    dataset = stage_copy(pipeline.dataset, tmp_path / "dataset", stages)
    index, page, sections = report(dataset, tmp_path / "no_training_yet")
    not_run = {key for key, state in sections.items() if state == "not run yet"}
    assert not_run == expected | {"training"}
    for key in not_run:
        assert '<p class="not-run">Not run yet:' in section(page, key)
    assert "no metrics.jsonl or metrics.csv" in section(page, "training")
    if "scores" in stages and "final" not in stages:
        # Before build_shards: candidate thresholds, and the highest/lowest scores instead of kept/dropped.
        assert "build_shards has not run yet" in section(page, "scores")
        assert "the highest and the lowest scoring pairs" in section(page, "pairs")
    assert_every_image_loads(index)


def test_a_broken_figure_fails_the_checks(scored: Path, tmp_path: Path) -> None:
    dataset = stage_copy(scored, tmp_path / "dataset", ("raw", "scores"))
    index, _, _ = report(dataset)
    assert_every_image_loads(index)
    (index.parent / "figures" / "sizes.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (index.parent / "figures" / "scores.png").unlink()
    expected = ["figures/sizes.png", "figures/scores.png"]
    assert sorted(broken_images_on_disk(index)) == sorted(expected)
    browser = load_in_chromium(index)
    assert sorted(browser.broken) == sorted(expected)
    with pytest.raises(AssertionError):
        assert_every_image_loads(index)


@pytest.mark.slow
def test_damaged_stage_output_is_an_error_note_not_a_crash(pipeline: Pipeline, tmp_path: Path) -> None:
    dataset = stage_copy(pipeline.dataset, tmp_path / "dataset", ("raw", "scores", "dedup", "final"))
    (dataset / "scores" / "_summary.json").write_text("{ truncated")
    (dataset / "dedup" / "matches.parquet").write_bytes(b"PAR1 garbage")
    index, page, sections = report(dataset)
    assert sections["scores"] == "could not be read" and sections["dedup"] == "could not be read"
    assert sections["downloads"] == "ok" and sections["pairs"] == "ok"
    assert "scores/ could not be read: JSONDecodeError" in section(page, "scores")
    assert '<p class="error">' in section(page, "dedup")
    assert_every_image_loads(index)


def test_rerun_replaces_the_report(scored: Path, tmp_path: Path) -> None:
    dataset = stage_copy(scored, tmp_path / "dataset", ("raw", "scores"))
    index, _, _ = report(dataset)
    assert (index.parent / "figures" / "kept.png").exists()
    (dataset / "report" / "figures" / "stale.png").write_bytes(b"old")
    for path in (dataset / "scores").iterdir():
        path.unlink() if path.is_file() else None
    index, page, sections = report(dataset)
    assert sections["scores"] == "not run yet"
    assert sorted(p.name for p in (index.parent / "figures").iterdir()) == ["downloads.png", "sizes.png"]
    assert not list(dataset.glob("report.tmp.*"))


def test_cli(scored: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dataset = stage_copy(scored, tmp_path / "dataset", ("raw",))
    metrics = MetricsLogger(tmp_path / "train", tensorboard=False)
    metrics.log(1, {"train/loss": 2.0})
    metrics.log(1, {"val/zeroshot_top1": 0.5})
    metrics.close()
    code = main(
        ["report", "--dataset", str(dataset), "--train-dir", str(tmp_path / "train"), "--samples", "4"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert f"report written to {dataset}/report/index.html (4 figures)" in out
    assert "training   ok" in out and "scores     not run yet" in out
    assert main(["report", "--dataset", str(tmp_path / "missing")]) == 2
    assert main(["report", "--dataset", str(dataset), "--samples", "0"]) == 2
    with pytest.raises(UserInputError, match="no such dataset directory"):
        write_report(ReportOptions(str(tmp_path / "missing")))
