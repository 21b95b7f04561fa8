"""What build_shards' caption rules drop: junk alt texts against descriptive captions.

    .venv/bin/python benchmarks/caption_rules.py

Three hand-written samples: ``benchmarks/data/captions_junk.tsv`` (64 alt texts of the kinds the
rules target: file names, URLs and e-mails, character runs, symbol soup, 1-4 character captions),
``benchmarks/data/captions_langid.tsv`` (325 descriptive captions in 11 languages, a fifth of
them 1-3 words; the language-ID sample) and ``benchmarks/data/captions_hard.tsv`` (38
descriptive captions that look like junk to a careless rule: model numbers, prices, sizes, dates,
emoji, short names; all three count as descriptive). Every caption is measured by
``pipeline.captions.rules.caption_features`` after the ftfy repair, as build_shards' candidate
tasks do, and judged by build_shards' own selection (``pipeline.build.selection.with_reasons``
on a local Spark session), so the numbers are those of the job's code path.

Prints, at build_shards' defaults, the share of each junk kind dropped and the share of
descriptive captions dropped (per language, with every dropped caption named), then a sweep of
each rule alone: junk of its kind caught against descriptive captions lost. The boilerplate rule
(``--max-caption-repeats``) counts a caption over the corpus, so a sample of distinct captions
cannot measure it; tests/build covers it.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from collections import Counter, defaultdict
from pathlib import Path

from harness.jobs import local_spark
from harness.paths import REPO, shown
from harness.table import markdown_table, pct

from pipeline.build.options import BuildOptions
from pipeline.captions.repair import repair_caption
from pipeline.captions.rules import caption_features
from pipeline.logs import setup_logging

log = logging.getLogger("benchmarks.caption_rules")
JUNK = REPO / "benchmarks" / "data" / "captions_junk.tsv"
DESCRIPTIVE = REPO / "benchmarks" / "data" / "captions_langid.tsv"
HARD = REPO / "benchmarks" / "data" / "captions_hard.tsv"
# Every caption rule off: the sweep turns on one at a time.
RULES_OFF = {
    "min_caption_length": 0,
    "max_symbol_share": 1.0,
    "drop_file_names": False,
    "drop_urls": False,
    "max_repeated_chars": 0,
    "max_caption_repeats": 0,
}
# (option, values, the junk kind it targets)
SWEEP = (
    ("min_caption_length", (3, 4, 5, 6), "short"),
    ("max_symbol_share", (0.3, 0.4, 0.5, 0.6, 0.7), "symbols"),
    ("max_repeated_chars", (2, 3, 4, 5, 6, 8), "repeated"),
    ("drop_file_names", (True,), "file_name"),
    ("drop_urls", (True,), "url"),
)


@dataclasses.dataclass(frozen=True)
class Caption:
    caption: str
    kind: str  # the junk kind, or "descriptive"
    language: str  # the label (junk: "")


def read_tsv(path: Path) -> list[tuple[str, ...]]:
    """The tab-separated rows of a sample (``#`` lines are comments)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [tuple(line.split("\t")) for line in lines if line.strip() and not line.startswith("#")]


def load_captions() -> list[Caption]:
    junk = [Caption(caption, kind, "") for kind, caption in read_tsv(JUNK)]
    descriptive = [Caption(caption, "descriptive", lang) for lang, _, caption in read_tsv(DESCRIPTIVE)]
    hard = [Caption(caption, "descriptive", lang) for lang, caption in read_tsv(HARD)]
    return junk + descriptive + hard


def candidates(spark: object, captions: list[Caption]) -> object:
    """A candidates DataFrame (build_shards' schema) holding one sample per caption."""
    from pipeline.build.selection import candidate_schema

    rows = []
    for index, item in enumerate(captions):
        repaired, _ = repair_caption(item.caption)
        rows.append(
            (f"{index:032x}", 0, index, 0.5, 512, 512, index, 0, 1, "{}", item.language or None)
            + caption_features(repaired)
        )
    return spark.createDataFrame(rows, candidate_schema())  # type: ignore[attr-defined]


def reasons(frame: object, options: BuildOptions) -> list[str | None]:
    """The drop reason build_shards gives each caption (None: kept), in input order."""
    from pipeline.build.selection import with_reasons, with_subset

    judged = with_reasons(with_subset(frame, None, None), None, options, None)
    rows = judged.select("row_index", "reason").collect()  # type: ignore[attr-defined]
    by_index = {row["row_index"]: row["reason"] for row in rows}
    return [by_index[i] for i in range(len(by_index))]


def defaults_report(captions: list[Caption], verdicts: list[str | None]) -> str:
    kinds: dict[str, list[str | None]] = defaultdict(list)
    for item, reason in zip(captions, verdicts, strict=True):
        kinds[item.kind].append(reason)
    rows = []
    for kind, found in sorted(kinds.items(), key=lambda pair: pair[0] == "descriptive"):
        dropped = [r for r in found if r is not None]
        why = ", ".join(f"{r} {n}" for r, n in Counter(dropped).most_common())
        rows.append((kind, len(found), f"{len(dropped)} ({pct(len(dropped) / len(found))})", why or "-"))
    table = markdown_table(("captions", "n", "dropped", "by"), rows, align="lrrl")
    lost = [
        (i.language, i.caption, r)
        for i, r in zip(captions, verdicts, strict=True)
        if i.kind == "descriptive" and r
    ]
    per_language = Counter(language for language, _, _ in lost)
    languages = Counter(i.language for i in captions if i.kind == "descriptive")
    lines = [table, "", "Descriptive captions dropped, per language:"]
    lines.append(", ".join(f"{lang} {per_language[lang]}/{n}" for lang, n in sorted(languages.items())))
    lines += [f"  {lang}: {caption!r} ({reason})" for lang, caption, reason in lost]
    return "\n".join(lines)


def sweep_report(spark: object, captions: list[Caption], frame: object) -> str:
    rows = []
    descriptive = sum(1 for item in captions if item.kind == "descriptive")
    junk = len(captions) - descriptive
    for name, values, target in SWEEP:
        in_kind = sum(1 for item in captions if item.kind == target)
        for value in values:
            options = BuildOptions(dataset="unused", **{**RULES_OFF, name: value})
            verdicts = reasons(frame, options)
            caught = sum(1 for i, r in zip(captions, verdicts, strict=True) if r and i.kind == target)
            any_junk = sum(
                1 for i, r in zip(captions, verdicts, strict=True) if r and i.kind != "descriptive"
            )
            lost = sum(1 for i, r in zip(captions, verdicts, strict=True) if r and i.kind == "descriptive")
            rows.append(
                (
                    f"--{name.replace('_', '-')} {value}",
                    f"{caught}/{in_kind} ({pct(caught / in_kind)})",
                    f"{any_junk}/{junk}",
                    f"{lost}/{descriptive} ({pct(lost / descriptive, 1)})",
                )
            )
    columns = ("rule alone", "its junk kind dropped", "all junk dropped", "descriptive dropped")
    return markdown_table(columns, rows, align="lrrr")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.parse_args()
    setup_logging()
    captions = load_captions()
    log.info("%d captions from %s", len(captions), ", ".join(shown(p) for p in (JUNK, DESCRIPTIVE, HARD)))
    spark = local_spark("caption-rules-benchmark")
    try:
        frame = candidates(spark, captions).cache()  # type: ignore[attr-defined]
        defaults = BuildOptions(dataset="unused")
        on = {f.name: getattr(defaults, f.name) for f in dataclasses.fields(defaults) if f.name in RULES_OFF}
        print(f"\n## build_shards defaults ({', '.join(f'{k}={v}' for k, v in on.items())})\n")
        print(defaults_report(captions, reasons(frame, defaults)))
        print("\n## Each rule alone\n")
        print(sweep_report(spark, captions, frame))
    finally:
        spark.stop()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
