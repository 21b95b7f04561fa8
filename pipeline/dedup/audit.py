"""The visual check of benchmark matches: each benchmark image beside its corpus match, with the signals.

``dedup/audit/index.html`` (static, opens from disk) has two sections of PNG pages of pairs,
the benchmark image (blue frame) on the left and the corpus sample on the right, with the signals
under the sample: whole-picture pHash distance, centre-hash distance and thumbnail distance:

- **dropped** (``page_NNN.png``, red frames): the samples written to ``matches.parquet``, every
  one confirmed by the verifier (or by the rule alone where no thumbnails exist);
- **rejected by the verifier** (``rejected_NNN.png``, grey frames): samples that a hash found but
  the verifier did not confirm, so they stay in the corpus. They are there so a person can check
  the verifier: a true copy among them is a miss.

A table under each section lists every pair shown with all its signals, and the page says how
many were left out. Everything is written through the dataset's
:class:`pipeline.storage.Storage` (local disk or any fsspec URL), each file atomically,
``index.html`` last.
"""

from __future__ import annotations

import html
import io
import logging
from collections import defaultdict
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageOps

from pipeline.dataset import Dataset

log = logging.getLogger(__name__)

TILE = 128
LABEL = 43
PAIRS_PER_ROW = 4
ROWS_PER_PAGE = 6
MATCHES_PER_BENCHMARK = 4
_GAP = 12
_BLUE, _RED, _GREY = (40, 90, 200), (200, 60, 40), (130, 130, 130)


@dataclass(frozen=True)
class AuditMatch:
    """One (benchmark image, corpus sample) pair and its signals."""

    benchmark_id: str
    uid: str
    distance: int
    flipped: bool
    centre: bool = False  # found by the centre hashes
    phash_distance: int | None = None
    centre_distance: int | None = None
    thumbnail_distance: float | None = None  # share of differing thumbnail pixels (0-1)
    verified: bool | None = None  # None: thumbnails not compared
    similarity: float | None = None  # cosine similarity of the image embeddings, when measured
    embedding: bool = False  # found by the embeddings, not the hashes
    layout_similarity: float | None = None  # cosine similarity of the thumbnail layouts, when measured
    layout: bool = False  # found by the layout search, not the hashes or embeddings

    @property
    def hash_label(self) -> str:
        """What found the pair: '' (whole-picture hash), 'mirror', 'centre', 'embedding',
        'embedding, mirror', 'layout' or 'layout, mirror'."""
        if self.embedding:
            return "embedding, mirror" if self.flipped else "embedding"
        if self.layout:
            return "layout, mirror" if self.flipped else "layout"
        return "centre" if self.centre else "mirror" if self.flipped else ""

    @property
    def similarity_text(self) -> str:
        return "-" if self.similarity is None else f"{self.similarity:.3f}"

    @property
    def layout_text(self) -> str:
        return "-" if self.layout_similarity is None else f"{self.layout_similarity:.3f}"

    @property
    def thumbnail_text(self) -> str:
        return "-" if self.thumbnail_distance is None else f"{100 * self.thumbnail_distance:.1f}%"

    @property
    def verdict_text(self) -> str:
        return {True: "verified", False: "rejected", None: "not compared"}[self.verified]


def _tile(data: bytes | None, lines: list[str], frame: tuple[int, int, int]) -> Image.Image:
    tile = Image.new("RGB", (TILE, TILE + LABEL), "white")
    draw = ImageDraw.Draw(tile)
    if data is None:
        draw.text((6, TILE // 2), "(hash only)", fill="grey")
    else:
        try:
            with Image.open(io.BytesIO(data)) as image:
                thumb = ImageOps.contain(image.convert("RGB"), (TILE - 6, TILE - 6))
            tile.paste(thumb, ((TILE - thumb.width) // 2, (TILE - thumb.height) // 2))
        except OSError:
            draw.text((6, TILE // 2), "(unreadable)", fill="red")
    draw.rectangle((0, 0, TILE - 1, TILE - 1), outline=frame, width=3)
    for i, line in enumerate(lines[:3]):
        draw.text((4, TILE + 2 + 13 * i), line[:22], fill="black")
    return tile


def render_page(
    pairs: list[tuple[AuditMatch, bytes | None, bytes | None]], dropped: bool, left: str = "benchmark"
) -> Image.Image:
    """One PNG page of pairs: benchmark image (or the sample a group keeps: ``left``), then the
    corpus sample with its signals."""
    rows = max(1, (len(pairs) + PAIRS_PER_ROW - 1) // PAIRS_PER_ROW)
    width = PAIRS_PER_ROW * (2 * TILE + _GAP)
    page = Image.new("RGB", (width, rows * (TILE + LABEL + _GAP)), (240, 240, 240))
    for i, (match, bench, corpus) in enumerate(pairs):
        x = (i % PAIRS_PER_ROW) * (2 * TILE + _GAP)
        y = (i // PAIRS_PER_ROW) * (TILE + LABEL + _GAP)
        name = match.benchmark_id.rsplit("/", 1)[-1]
        page.paste(_tile(bench, [name, left], _BLUE), (x, y))
        whole = "-" if match.phash_distance is None else match.phash_distance
        centre = "-" if match.centre_distance is None else match.centre_distance
        lines = [f"pHash {whole} centre {centre}", f"thumb {match.thumbnail_text} {match.verdict_text}"]
        if match.similarity is not None:
            lines.insert(1, f"{'found by ' if match.embedding else ''}emb {match.similarity:.3f}")
        elif match.layout_similarity is not None:
            lines.insert(1, f"{'found by ' if match.layout else ''}layout {match.layout_similarity:.3f}")
        page.paste(_tile(corpus, lines, _RED if dropped else _GREY), (x + TILE, y))
    return page


def _shown(matches: list[AuditMatch]) -> tuple[list[str], list[AuditMatch]]:
    """Benchmark ids in order, and up to MATCHES_PER_BENCHMARK closest matches of each."""
    by_benchmark: dict[str, list[AuditMatch]] = defaultdict(list)
    for match in sorted(matches, key=lambda m: (m.benchmark_id, m.distance, m.uid)):
        by_benchmark[match.benchmark_id].append(match)
    ids = sorted(by_benchmark)
    return ids, [m for bid in ids for m in by_benchmark[bid][:MATCHES_PER_BENCHMARK]]


def _section(
    dataset: Dataset,
    matches: list[AuditMatch],
    benchmark_images: dict[str, bytes | None],
    corpus_images: dict[str, bytes],
    prefix: str,
    dropped: bool,
    left: str = "benchmark",
) -> tuple[list[str], str]:
    """Write a section's PNG pages; return their names and the section's table rows (HTML)."""
    _, shown = _shown(matches)
    per_page = PAIRS_PER_ROW * ROWS_PER_PAGE
    names = []
    for start in range(0, len(shown), per_page):
        pairs = [
            (m, benchmark_images.get(m.benchmark_id), corpus_images.get(m.uid))
            for m in shown[start : start + per_page]
        ]
        name = f"{prefix}_{start // per_page:03d}.png"
        buffer = io.BytesIO()
        render_page(pairs, dropped, left).save(buffer, format="PNG")
        dataset.storage.write_bytes(buffer.getvalue(), dataset.dedup.audit_folder, name)
        names.append(name)

    def cell(value: object) -> str:
        return "-" if value is None else html.escape(str(value))

    rows = "\n".join(
        f"<tr><td>{html.escape(m.benchmark_id)}</td><td>{html.escape(m.uid)}</td>"
        f"<td>{m.hash_label or 'whole'}</td>"
        f"<td>{cell(m.phash_distance)}</td><td>{cell(m.centre_distance)}</td><td>{m.similarity_text}</td>"
        f"<td>{m.layout_text}</td><td>{m.thumbnail_text}</td>"
        f"<td>{m.verdict_text}</td></tr>"
        for m in shown
    )
    return names, rows


_TABLE_HEAD = (
    "<tr><th>benchmark image</th><th>corpus uid</th><th>found by</th><th>pHash distance</th>"
    "<th>centre distance</th><th>embedding similarity</th><th>layout similarity</th>"
    "<th>thumbnail differs</th><th>verifier</th></tr>"
)
_SEMANTIC_HEAD = _TABLE_HEAD.replace("benchmark image", "kept sample").replace("corpus uid", "dropped uid")


@dataclass(frozen=True)
class SemanticAudit:
    """The semantic duplicates to show: pairs (``benchmark_id`` holds the kept sample's uid), the
    stored images of both sides by uid, and how many groups there are in all."""

    pairs: list[AuditMatch]
    images: dict[str, bytes]
    groups: int
    dropped: int


def write_audit(
    dataset: Dataset,
    matches: list[AuditMatch],
    benchmark_images: dict[str, bytes | None],
    corpus_images: dict[str, bytes],
    total_benchmarks_matched: int,
    rejected: list[AuditMatch] | None = None,
    total_benchmarks_rejected: int = 0,
    semantic: SemanticAudit | None = None,
) -> str:
    """Write the PNG pages and index.html under dedup/audit/; return the index path.

    ``matches``: the dropped pairs of the benchmark images to show; ``rejected``: the pairs the
    verifier rejected (closest per sample), of the benchmark images to show. The totals count all
    benchmark images with such pairs, shown or not. ``semantic``: SemDeDup groups to show
    (``--semantic-threshold``), in a section of their own.
    """
    rejected = rejected or []
    storage, audit = dataset.storage, dataset.dedup.audit_folder
    storage.remove(audit)
    storage.makedirs(audit)
    dropped_pages, dropped_rows = _section(dataset, matches, benchmark_images, corpus_images, "page", True)
    rejected_pages, rejected_rows = _section(
        dataset, rejected, benchmark_images, corpus_images, "rejected", False
    )
    semantic_section = _semantic_section(dataset, semantic) if semantic is not None else ""
    shown_dropped = len({m.benchmark_id for m in matches})
    shown_rejected = len({m.benchmark_id for m in rejected})

    def images(pages: list[str]) -> str:
        return "\n".join(f'<p><img src="{p}" alt="{p}"></p>' for p in pages)

    def left_out(total: int, shown: int) -> str:
        more = total - shown
        return f"<p>{more} more benchmark images not shown (--audit-limit).</p>" if more > 0 else ""

    benchmark_part = f"""<p>Each pair: a benchmark image (blue) and a corpus sample (right).
Under the sample, its signals: the distance of the whole-picture pHashes in bits (of the mirror
image for mirrored matches), of the centre hashes, the cosine similarity of the image embeddings
when measured (<code>--embeddings</code>; "found by emb" when only the embeddings found the
pair), the cosine similarity of the thumbnail layouts when measured (the layout search, off with
<code>--no-layout-search</code>; "found by layout" when only the layouts found the pair), and the
share of verification-thumbnail pixels that differ after the closest allowed brightness/colour
change (docs/dedup.md, "Verification").</p>
<h2>Dropped: {len(matches)} samples of {total_benchmarks_matched} benchmark images</h2>
<p>Written to <code>matches.parquet</code>; build_shards leaves them out. Each should be a copy of
its benchmark image. {shown_dropped} benchmark images shown.</p>
{left_out(total_benchmarks_matched, shown_dropped)}
{images(dropped_pages)}
<table>{_TABLE_HEAD}
{dropped_rows}
</table>
<h2>Rejected by the verifier: {len(rejected)} samples kept, of {total_benchmarks_rejected}
benchmark images</h2>
<p>A hash (or the embeddings, or the layouts) found these samples but the verifier did not
confirm them, so they stay in the corpus (grey frames). Each should be a different picture; a copy
here is a miss of the verifier.
{shown_rejected} benchmark images shown.</p>
{left_out(total_benchmarks_rejected, shown_rejected)}
{images(rejected_pages)}
<table>{_TABLE_HEAD}
{rejected_rows}
</table>"""
    if not matches and not rejected and semantic is not None:
        benchmark_part = "<p>No benchmark duplicates and no rejected benchmark candidates.</p>"
    title = "Benchmark duplicates found in the corpus" if semantic is None else "Dedup audit"
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>corpusforge dedup audit</title>
<style>body{{font-family:sans-serif}} td,th{{padding:2px 8px;border-bottom:1px solid #ddd}}</style>
</head><body>
<h1>{title}</h1>
{benchmark_part}
{semantic_section}</body></html>
"""
    storage.write_bytes(page.encode("utf-8"), audit, "index.html")  # last: it names the pages
    return storage.display(audit, "index.html")


def _semantic_section(dataset: Dataset, semantic: SemanticAudit) -> str:
    """The SemDeDup section: the sample each group keeps (blue) beside dropped members (red)."""
    pages, rows = _section(
        dataset, semantic.pairs, semantic.images, semantic.images, "semantic", True, "kept"
    )
    shown = len({m.benchmark_id for m in semantic.pairs})
    more = semantic.groups - shown
    images = "\n".join(f'<p><img src="{p}" alt="{p}"></p>' for p in pages)
    groups = f"{semantic.groups} group{'s' if semantic.groups != 1 else ''}"
    return f"""<h2>Semantic duplicates: {semantic.dropped} samples dropped, in {groups}</h2>
<p>SemDeDup (<code>--semantic-threshold</code>): image embeddings at or above the threshold inside one
k-means cluster. Each pair: the sample its group keeps (blue) and a dropped member (red) with its
highest similarity. Each should be nearly the same picture; if not, raise the threshold.
{shown} of them shown.</p>
{f"<p>{more} more groups not shown (--audit-limit).</p>" if more > 0 else ""}
{images}
<table>{_SEMANTIC_HEAD}
{rows}
</table>
"""
