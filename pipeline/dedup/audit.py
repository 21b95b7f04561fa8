"""The visual check of benchmark matches: benchmark images above their corpus matches.

``dedup/audit/index.html`` (static, opens from disk) shows PNG pages of columns: each column is
one benchmark image on top (blue frame) and its closest corpus matches below it with their
pHash distance; a table lists every match shown, and the page says how many were left out.
It is written through the dataset's :class:`pipeline.storage.Storage` (local disk or any fsspec
URL), each file atomically, ``index.html`` last.
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
LABEL = 16
COLUMNS_PER_PAGE = 10
MATCHES_PER_COLUMN = 4


@dataclass(frozen=True)
class AuditMatch:
    benchmark_id: str
    uid: str
    distance: int
    flipped: bool
    centre: bool = False  # found by the centre hashes

    @property
    def hash_label(self) -> str:
        """Which hashes matched: '' (whole picture), 'mirror' or 'centre'."""
        return "centre" if self.centre else "mirror" if self.flipped else ""


def _tile(data: bytes | None, label: str, frame: tuple[int, int, int]) -> Image.Image:
    tile = Image.new("RGB", (TILE, TILE + LABEL), "white")
    if data is None:
        ImageDraw.Draw(tile).text((6, TILE // 2), "(hash only)", fill="grey")
    else:
        try:
            with Image.open(io.BytesIO(data)) as image:
                thumb = ImageOps.contain(image.convert("RGB"), (TILE - 6, TILE - 6))
            tile.paste(thumb, ((TILE - thumb.width) // 2, (TILE - thumb.height) // 2))
        except OSError:
            ImageDraw.Draw(tile).text((6, TILE // 2), "(unreadable)", fill="red")
    draw = ImageDraw.Draw(tile)
    draw.rectangle((0, 0, TILE - 1, TILE - 1), outline=frame, width=3)
    draw.text((4, TILE + 2), label[:20], fill="black")
    return tile


def render_page(
    columns: list[tuple[str, bytes | None, list[tuple[AuditMatch, bytes | None]]]],
) -> Image.Image:
    """One PNG page: per column, a benchmark image and up to MATCHES_PER_COLUMN matches below."""
    height = (TILE + LABEL) * (1 + MATCHES_PER_COLUMN)
    page = Image.new("RGB", (TILE * max(1, len(columns)), height), (240, 240, 240))
    for x, (benchmark_id, data, matches) in enumerate(columns):
        page.paste(_tile(data, benchmark_id.rsplit("/", 1)[-1], (40, 90, 200)), (x * TILE, 0))
        for y, (match, image) in enumerate(matches[:MATCHES_PER_COLUMN], start=1):
            label = f"d={match.distance} {match.hash_label}".strip()
            page.paste(_tile(image, label, (200, 60, 40)), (x * TILE, y * (TILE + LABEL)))
    return page


def write_audit(
    dataset: Dataset,
    matches: list[AuditMatch],
    benchmark_images: dict[str, bytes | None],
    corpus_images: dict[str, bytes],
    total_benchmarks_matched: int,
) -> str:
    """Write the PNG pages and index.html under dedup/audit/; return the index path."""
    by_benchmark: dict[str, list[AuditMatch]] = defaultdict(list)
    for match in sorted(matches, key=lambda m: (m.benchmark_id, m.distance, m.uid)):
        by_benchmark[match.benchmark_id].append(match)
    ids = sorted(by_benchmark)
    storage, audit = dataset.storage, dataset.dedup.audit_folder
    storage.remove(audit)
    storage.makedirs(audit)
    pages = []
    for start in range(0, len(ids), COLUMNS_PER_PAGE):
        columns = [
            (
                bid,
                benchmark_images.get(bid),
                [(m, corpus_images.get(m.uid)) for m in by_benchmark[bid][:MATCHES_PER_COLUMN]],
            )
            for bid in ids[start : start + COLUMNS_PER_PAGE]
        ]
        name = f"page_{start // COLUMNS_PER_PAGE:03d}.png"
        buffer = io.BytesIO()
        render_page(columns).save(buffer, format="PNG")
        storage.write_bytes(buffer.getvalue(), audit, name)
        pages.append(name)
    rows = "\n".join(
        f"<tr><td>{html.escape(m.benchmark_id)}</td><td>{html.escape(m.uid)}</td>"
        f"<td>{m.distance}</td><td>{m.hash_label}</td></tr>"
        for bid in ids
        for m in by_benchmark[bid]
    )
    images = "\n".join(f'<p><img src="{p}" alt="{p}"></p>' for p in pages)
    left_out = total_benchmarks_matched - len(ids)
    note = (
        f"<p>{left_out} more matched benchmark images not shown (--audit-limit).</p>" if left_out > 0 else ""
    )
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>corpusforge dedup audit</title>
<style>body{{font-family:sans-serif}} td,th{{padding:2px 8px;border-bottom:1px solid #ddd}}</style>
</head><body>
<h1>Benchmark duplicates found in the corpus</h1>
<p>Each column: a benchmark image (blue) above its closest corpus matches (red) with their pHash
distance in bits ("centre": the distance of the pictures' centres, "mirror": of the mirror
image). {len(ids)} benchmark images shown.</p>
{note}
{images}
<h2>Matches shown</h2>
<table><tr><th>benchmark image</th><th>corpus uid</th><th>distance</th><th>hash</th></tr>
{rows}
</table></body></html>
"""
    storage.write_bytes(page.encode("utf-8"), audit, "index.html")  # last: it names the pages
    return storage.display(audit, "index.html")
