"""Language identification of captions: py3langid, lingua and pycld2 on a labelled sample.

    .venv/bin/python benchmarks/langid.py [--rounds 5] [--sample benchmarks/data/captions_langid.tsv]

The sample (``benchmarks/data/captions_langid.tsv``, hand-written alt-text style captions) has 28
captions in each of en, zh, ja, ko, de, fr, es, ru, ar, pt and it (8 of 1-3 words, 20 longer) and
15 Chinese captions mixed with English words (brand names, units; labelled zh). Every library
runs with all the languages it knows (no restriction to the sample's languages), one caption at a
time on the calling thread (a Spark task has one core). Prints accuracy per language, on the
short, medium and mixed captions and overall, the model load time, the resident memory each
library added (both measured in a fresh Python process per library), and the best per-caption
CPU and wall time over ``--rounds`` interleaved rounds
(``harness.timing.best_of_rounds``). The ``corpusforge`` row is
``pipeline.captions.language`` as the score job calls it: py3langid restricted to 71 languages,
CJK told apart by script, after the ftfy repair (``pipeline.captions.repair``; its time included).
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from harness.paths import REPO, shown
from harness.table import markdown_table, pct, text_table
from harness.timing import best_of_rounds

from pipeline.logs import setup_logging

log = logging.getLogger("benchmarks.langid")
SAMPLE = REPO / "benchmarks" / "data" / "captions_langid.tsv"
Identify = Callable[[str], str]


def read_sample(path: Path) -> list[tuple[str, str, str]]:
    """(language, length class, caption) rows of the labelled TSV (``#`` lines are comments)."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            language, kind, caption = line.split("\t", 2)
            rows.append((language, kind, caption))
    return rows


def _py3langid() -> Identify:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    return lambda text: identifier.classify(text)[0]


def _lingua(low_accuracy: bool) -> Callable[[], Identify]:
    def build() -> Identify:
        from lingua import LanguageDetectorBuilder

        builder = LanguageDetectorBuilder.from_all_languages()
        if low_accuracy:
            builder = builder.with_low_accuracy_mode()
        detector = builder.with_preloaded_language_models().build()

        def identify(text: str) -> str:
            found = detector.detect_language_of(text)
            return "und" if found is None else found.iso_code_639_1.name.lower()

        return identify

    return build


def _pycld2() -> Identify:
    import pycld2

    def identify(text: str) -> str:
        try:
            _, _, details = pycld2.detect(text)
        except pycld2.error:
            return "und"
        code = details[0][1]
        return "und" if code == "un" else code.split("-")[0]

    return identify


def _corpusforge() -> Identify:
    from pipeline.captions.language import LanguageIdentifier
    from pipeline.captions.repair import repair_caption

    identifier = LanguageIdentifier()
    return lambda text: identifier.identify(repair_caption(text)[0])[0]


LIBRARIES: dict[str, Callable[[], Identify]] = {
    "py3langid 0.4 (all 140 languages)": _py3langid,
    "lingua 2.1 (high accuracy)": _lingua(False),
    "lingua 2.1 (low accuracy)": _lingua(True),
    "pycld2 0.42": _pycld2,
    "corpusforge (py3langid, 71 languages, CJK scripts)": _corpusforge,
}


def _load_cost(name: str) -> tuple[float, float]:
    """(seconds, MB of peak resident memory added) to build one library, in a fresh Python process.

    The peak is VmHWM of /proc/self/status (getrusage's maxrss survives exec on Linux: a child of
    this process would start with its peak).
    """
    code = (
        "import json, re, sys, time; sys.argv = ['langid']; import langid as b\n"
        "hwm = lambda: int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
        "before = hwm(); t = time.perf_counter()\n"
        f"f = b.LIBRARIES[{name!r}](); f('warm up')\n"
        "print(json.dumps([time.perf_counter() - t, (hwm() - before) / 1024]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=Path(__file__).parent, capture_output=True, text=True, check=True
    )
    seconds, megabytes = json.loads(out.stdout.strip().splitlines()[-1])
    return seconds, megabytes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", type=Path, default=SAMPLE, help="labelled TSV: language, length, caption")
    parser.add_argument("--rounds", type=int, default=5, help="timing rounds (best kept)")
    parser.add_argument("--markdown", action="store_true", help="print markdown tables (docs/benchmarks.md)")
    args = parser.parse_args(argv)
    setup_logging()
    rows = read_sample(args.sample)
    log.info("%d labelled captions from %s", len(rows), shown(args.sample))
    identifiers: dict[str, Identify] = {}
    loads: dict[str, tuple[float, float]] = {}
    for name, build in LIBRARIES.items():
        loads[name] = _load_cost(name)
        identifiers[name] = build()
        identifiers[name]("warm up")

    languages = sorted({language for language, _, _ in rows})
    correct: dict[str, dict[str, list[bool]]] = {name: defaultdict(list) for name in identifiers}
    for name, identify in identifiers.items():
        for language, kind, caption in rows:
            hit = identify(caption) == language
            correct[name][language].append(hit)
            correct[name][kind].append(hit)
            correct[name]["all"].append(hit)
    timings = best_of_rounds(
        {name: (lambda f=f: [f(caption) for _, _, caption in rows]) for name, f in identifiers.items()},
        args.rounds,
    )

    def share(values: list[bool]) -> str:
        return pct(sum(values) / len(values), 1) if values else "-"

    groups = [*languages, "short", "medium", "mixed", "all"]
    table = (markdown_table if args.markdown else text_table)
    columns = ["library", *groups]
    print(table(columns, [[name, *(share(correct[name][g]) for g in groups)] for name in identifiers]))
    print()
    speed = [
        [
            name,
            f"{loads[name][0]:.2f}",
            f"{loads[name][1]:.0f}",
            f"{1e6 * timings[name].cpu_s / len(rows):.0f}",
            f"{1e6 * timings[name].wall_s / len(rows):.0f}",
            f"{len(rows) / timings[name].wall_s:,.0f}",
        ]
        for name in identifiers
    ]
    print(table(["library", "load s", "memory MB", "CPU us/caption", "wall us/caption", "captions/s"], speed))
    print(f"\n{len(rows)} captions ({', '.join(languages)}), best of {args.rounds} rounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
