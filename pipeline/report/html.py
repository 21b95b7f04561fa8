"""The report page: one static HTML file whose figures are PNG files next to it.

The page loads nothing from the network (a Content-Security-Policy allows images from its own
folder and data URIs only) and carries a small script that marks every ``<img>`` that failed to
load (``data-loaded="no"`` and a visible note), so a broken figure is seen in any browser and can
be checked by a headless one (``body[data-images-broken]``).
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence

from pipeline import __version__
from pipeline.report.collect import (
    Dedup,
    Downloads,
    Missing,
    Pair,
    PairSamples,
    ReportData,
    Scores,
    SizeHistograms,
    Threshold,
    Training,
)

CSP = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1280px; padding: 0 1em;
  color: #222 }
h1 { margin-bottom: 0.2em } h2 { border-bottom: 2px solid #ddd; padding-top: 0.6em }
img { max-width: 100%; border: 1px solid #eee }
table { border-collapse: collapse; margin: 0.6em 0 }
td, th { padding: 2px 10px; border-bottom: 1px solid #e4e4e4; text-align: left; vertical-align: top }
td.num { text-align: right; font-variant-numeric: tabular-nums }
.not-run { background: #fff8e1; border-left: 4px solid #f0b429; padding: 0.5em 1em }
.error, .broken { background: #fdecea; border-left: 4px solid #d1495b; padding: 0.5em 1em }
.warning { background: #fff4e5; border-left: 4px solid #e8590c; padding: 0.5em 1em }
.meta { color: #555 } code { background: #f4f4f4; padding: 0 3px }
td.caption { max-width: 640px; overflow-wrap: anywhere }
"""

# Marks images that did not load; runs on the load event, after every image settled.
CHECK_SCRIPT = """
window.addEventListener('load', function () {
  var broken = 0;
  Array.prototype.forEach.call(document.images, function (img) {
    var ok = img.complete && img.naturalWidth > 0;
    img.setAttribute('data-loaded', ok ? 'yes' : 'no');
    if (!ok) {
      broken += 1;
      var note = document.createElement('p');
      note.className = 'broken';
      note.textContent = 'This figure failed to load: ' + img.getAttribute('src');
      img.insertAdjacentElement('afterend', note);
    }
  });
  document.body.setAttribute('data-images-checked', String(document.images.length));
  document.body.setAttribute('data-images-broken', String(broken));
});
"""

SECTIONS = (
    ("downloads", "Download outcomes"),
    ("sizes", "Image sizes"),
    ("scores", "CLIP scores"),
    ("pairs", "Kept and dropped pairs"),
    ("dedup", "Benchmark duplicates"),
    ("training", "Training"),
)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _n(value: object) -> str:
    """A number with thousands separators; anything else (a missing field) as text."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return _e("?" if value is None else value)


def _percent(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def _table(header: Sequence[str], rows: Iterable[Sequence[object]], numeric: Sequence[int] = ()) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "\n".join(
        "<tr>"
        + "".join(
            f'<td class="{"num" if i in numeric else ""}">{_e(cell)}</td>' for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>\n{body}\n</table>"


def _figure(figures: dict[str, str], key: str, alt: str) -> str:
    if key not in figures:
        return ""
    return f'<p><img src="{_e(figures[key])}" alt="{_e(alt)}"></p>'


def _missing(missing: Missing) -> str:
    if missing.error:
        return f'<p class="error">Could not show this section: {_e(missing.note)}</p>'
    return f'<p class="not-run">Not run yet: {_e(missing.note)}</p>'


def _downloads(d: Downloads | Missing, figures: dict[str, str]) -> str:
    if isinstance(d, Missing):
        return _missing(d)
    complete = f"{d.shards} complete raw shards" + (
        f" of {d.expected_shards} planned" if d.expected_shards is not None else ""
    )
    parts = [
        f'<p class="meta">From <code>raw/NNNNN_stats.json</code> and <code>raw/NNNNN.parquet</code>: '
        f"{_e(complete)}, {d.rows:,} input rows, {d.stored_bytes / 1e6:,.1f} MB stored.</p>"
    ]
    if d.warnings:
        items = "".join(f"<li>{_e(message)}</li>" for message in d.warnings)
        parts.append(f'<div class="warning"><p>Unusual error rates:</p><ul>{items}</ul></div>')
    if d.expected_shards is not None and d.shards < d.expected_shards:
        parts.append(
            f'<p class="not-run">The download is not finished: {d.expected_shards - d.shards} raw shards '
            "are missing or incomplete (run the download job again to finish them).</p>"
        )
    parts.append(_figure(figures, "downloads", "download outcomes by error class"))
    parts.append(
        _table(
            ["outcome", "row status", "rows", "share"],
            [(o.name, o.status, f"{o.count:,}", _percent(o.count, d.rows)) for o in d.outcomes],
            numeric=(2, 3),
        )
    )
    if d.summary:
        s = d.summary
        dups = s.get("duplicates_found", {})
        parts.append(
            f'<p class="meta">Job summary (<code>raw/_summary.json</code>): {_n(s.get("input_rows"))} rows '
            f"read, {_n(dups.get('duplicate_pair'))} duplicate pairs and {_n(dups.get('duplicate_url'))} "
            f"duplicate URLs found; last run {_n(s.get('seconds'))} s, "
            f"{_n(s.get('images_per_second'))} images/s.</p>"
        )
    return "\n".join(parts)


def _sizes(s: SizeHistograms | Missing, figures: dict[str, str]) -> str:
    if isinstance(s, Missing):
        return _missing(s)
    ranges = [(name, f"{lo:,}", f"{hi:,}") for name, (lo, hi) in s.ranges.items()]
    stored = ", ".join(f"{size} ({_percent(n, s.count)})" for size, n in s.stored_sizes)
    return "\n".join(
        [
            f'<p class="meta">Widths and heights of the {s.count:,} downloaded images (columns '
            "<code>original_width/height</code> and <code>width/height</code> of the raw parquet).</p>",
            _figure(figures, "sizes", "image size distribution"),
            _table(["column", "smallest px", "largest px"], ranges, numeric=(1, 2)),
            f"<p>Most frequent stored sizes: {_e(stored)}</p>",
        ]
    )


def _scores(s: Scores | Missing, figures: dict[str, str]) -> str:
    if isinstance(s, Missing):
        return _missing(s)
    parts = [
        f'<p class="meta">From <code>scores/</code>: {s.scored:,} samples scored with {_e(s.model)} '
        f"(<code>{_e(s.pretrained)}</code>) in {s.shards_scored} of {s.raw_shards} raw shards; "
        f"median score {s.median:.3f}.</p>"
    ]
    if not s.finished:
        parts.append(
            '<p class="not-run">The score job has not finished (no <code>scores/_summary.json</code>): '
            "the histogram covers the shards scored so far.</p>"
        )
    parts.append(_figure(figures, "scores", "CLIP score histogram"))
    t = s.threshold
    if isinstance(t, Threshold):
        if t.value is not None:
            kept = f"{100 * t.kept_of_scored:.1f}%" if t.kept_of_scored is not None else "?"
            parts.append(
                f"<p><b>Chosen threshold</b> (<code>final/manifest.json</code>, {_e(t.rule)}): "
                f"clip_score &ge; {t.value:.4f}, which keeps {kept} of the scored samples. "
                f"After every rule build_shards kept {t.kept:,} of {t.samples:,} samples "
                f"({_percent(t.kept, t.samples)}).</p>"
            )
        else:
            parts.append(
                f"<p>build_shards ran without a CLIP score rule (kept {t.kept:,} of {t.samples:,} samples); "
                "the candidate thresholds are shown.</p>"
            )
        if t.dropped:
            parts.append(
                _table(
                    ["drop reason", "samples", "share"],
                    [(r, f"{n:,}", _percent(n, t.samples)) for r, n in t.dropped.items()],
                    numeric=(1, 2),
                )
            )
    else:
        parts.append(_missing(t))
    if s.languages:
        built = any(kept is not None for _, _, kept in s.languages)
        header = ["caption language", "scored", "share"]
        header += ["kept by build_shards", "kept fraction"] if built else []
        rows = [
            (language, f"{n:,}", _percent(n, s.scored))
            + ((f"{kept or 0:,}", _percent(kept or 0, n)) if built else ())
            for language, n, kept in s.languages
        ]
        parts.append(_table(header, rows, numeric=(1, 2, 3, 4) if built else (1, 2)))
    parts.append(
        _table(
            ["candidate threshold", "kept fraction"],
            [(f"{v:g}", f"{100 * f:.1f}%") for v, f in sorted(s.candidates.items())],
            numeric=(0, 1),
        )
    )
    parts.append(
        _table(
            ["keep the top", "threshold"],
            [(f"{100 * f:g}%", f"{v:.3f}") for f, v in sorted(s.top_fractions.items())],
            numeric=(0, 1),
        )
    )
    return "\n".join(parts)


def _pair_table(pairs: Sequence[Pair]) -> str:
    rows = "\n".join(
        f"<tr><td><code>{_e(p.uid)}</code></td><td class='num'>"
        f"{'-' if p.clip_score is None else f'{p.clip_score:.4f}'}</td><td>{_e(p.reason or 'kept')}</td>"
        f"<td class='num'>{p.raw_shard}</td><td class='caption'>{_e(p.caption)}</td></tr>"
        for p in pairs
    )
    return (
        "<table><tr><th>uid</th><th>clip_score</th><th>fate</th><th>raw shard</th><th>caption</th></tr>\n"
        f"{rows}\n</table>"
    )


def _pairs(p: PairSamples | Missing, figures: dict[str, str]) -> str:
    if isinstance(p, Missing):
        return _missing(p)
    if p.source == "scores":
        parts = [
            '<p class="not-run">build_shards has not run yet: nothing is kept or dropped. Shown instead: '
            f"the highest and the lowest scoring pairs of the {p.kept_total:,} scored.</p>",
            "<h3>Highest CLIP scores</h3>",
            _figure(figures, "kept", "highest scoring pairs"),
            _pair_table(p.kept),
            "<h3>Lowest CLIP scores</h3>",
            _figure(figures, "dropped", "lowest scoring pairs"),
            _pair_table(p.dropped),
        ]
        return "\n".join(parts)
    dropped_total = sum(p.dropped_by_reason.values())
    parts = [
        '<p class="meta">Random samples from build_shards\' records (<code>final/_selection/</code>); images '
        "and captions from the raw shards.</p>",
        f"<h3>Kept: {len(p.kept)} of {p.kept_total:,}</h3>",
        _figure(figures, "kept", "kept pairs") if p.kept else "<p>No sample was kept.</p>",
        _pair_table(p.kept),
        f"<h3>Dropped: {len(p.dropped)} of {dropped_total:,}, every reason shown</h3>",
        _figure(figures, "dropped", "dropped pairs") if p.dropped else "<p>No sample was dropped.</p>",
        _pair_table(p.dropped),
    ]
    return "\n".join(parts)


def _dedup(d: Dedup | Missing, figures: dict[str, str]) -> str:
    if isinstance(d, Missing):
        return _missing(d)
    parts = [
        '<p class="meta">From <code>dedup/matches.parquet</code> (samples build_shards drops) and the audit '
        "grid of <code>dedup/audit/</code>.</p>",
        _table(["reason", "samples"], [(r, f"{n:,}") for r, n in d.by_reason.items()], numeric=(1,))
        if d.by_reason
        else "<p>No duplicate found: matches.parquet is empty.</p>",
        _figure(figures, "dedup_distances", "pHash distances of the matches"),
        "<h3>Audit grid</h3>",
        "<p>Each column: a benchmark image (blue frame) above its closest corpus matches (red) with their "
        "pHash distance in bits.</p>",
    ]
    pages = sorted(k for k in figures if k.startswith("dedup_audit_"))
    if pages:
        parts += [_figure(figures, k, f"dedup audit page {k.rsplit('_', 1)[-1]}") for k in pages]
    elif d.by_reason.get("benchmark_duplicate"):
        parts.append('<p class="not-run">No audit page: the dedup job ran with --audit-limit 0.</p>')
    else:
        parts.append("<p>No benchmark duplicate found, so there is no audit page.</p>")
    if d.unreadable_pages:
        parts.append(
            '<p class="error">Unreadable audit pages, not shown: '
            + ", ".join(f"<code>{_e(p)}</code>" for p in d.unreadable_pages)
            + "</p>"
        )
    if d.benchmark_matches:
        more = d.benchmark_total - len(d.benchmark_matches)
        parts.append(
            _table(
                ["benchmark image", "corpus uid", "distance"],
                [(m.benchmark_id, m.uid, m.distance) for m in d.benchmark_matches],
                numeric=(2,),
            )
        )
        if more > 0:
            parts.append(f"<p>{more:,} more benchmark duplicates in matches.parquet.</p>")
    return "\n".join(parts)


def _training(t: Training | Missing, figures: dict[str, str]) -> str:
    if isinstance(t, Missing):
        return _missing(t)
    parts = [f'<p class="meta">From <code>{_e(t.source)}</code>.</p>']
    if t.skipped_lines:
        parts.append(f'<p class="error">{t.skipped_lines} unreadable metric lines were skipped.</p>')
    if t.summary is None:
        parts.append('<p class="not-run">The run has not finished (no summary.json): curves so far.</p>')
    parts.append(_figure(figures, "training", "training curves"))
    parts.append(_figure(figures, "evaluation", "zero-shot accuracy and retrieval recall"))
    if "training" not in figures and "evaluation" not in figures:
        parts.append('<p class="not-run">No training or evaluation series logged yet.</p>')
    latest = [(name, points[-1][0], f"{points[-1][1]:.4g}") for name, points in t.series.items()]
    parts.append(_table(["metric", "last step", "last value"], latest, numeric=(1, 2)))
    if t.summary:
        s = t.summary
        parts.append(
            f"<p>Finished: {_e(s.get('model', '?'))} trained to step {_e(s.get('steps', '?'))}, final loss "
            f"{_e(s.get('final_loss', '?'))}.</p>"
        )
    return "\n".join(parts)


def _status(section: object) -> str:
    if isinstance(section, Missing):
        return "could not be read" if section.error else "not run yet"
    return ""


def render_page(data: ReportData, figures: dict[str, str]) -> str:
    """The whole page; ``figures`` maps figure keys to their ``src`` relative to the page."""
    bodies = {
        "downloads": _downloads(data.downloads, figures),
        "sizes": _sizes(data.sizes, figures),
        "scores": _scores(data.scores, figures),
        "pairs": _pairs(data.pairs, figures),
        "dedup": _dedup(data.dedup, figures),
        "training": _training(data.training, figures),
    }
    contents = "\n".join(
        f'<li><a href="#{key}">{_e(title)}</a>'
        + (f" <i>({_status(getattr(data, key))})</i>" if _status(getattr(data, key)) else "")
        + "</li>"
        for key, title in SECTIONS
    )
    sections = "\n".join(
        f'<section id="{key}">\n<h2>{_e(title)}</h2>\n{bodies[key]}\n</section>' for key, title in SECTIONS
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<title>corpusforge report: {_e(data.dataset)}</title>
<style>{STYLE}</style>
<script>{CHECK_SCRIPT}</script>
</head><body>
<h1>corpusforge report</h1>
<p class="meta">Dataset: <code id="dataset">{_e(data.dataset)}</code><br>
Generated: <time id="generated" datetime="{_e(data.generated)}">{_e(data.generated)}</time>
by corpusforge {_e(__version__)}</p>
<ul>{contents}</ul>
{sections}
</body></html>
"""
