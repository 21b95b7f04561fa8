"""Result tables: markdown (for docs/benchmarks.md) and aligned plain text (for the terminal)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

LEFT, RIGHT = "l", "r"


def _cells(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[list[str]]:
    table = [[str(c) for c in columns]]
    for row in rows:
        if len(row) != len(columns):
            raise ValueError(f"a row has {len(row)} cells, the table {len(columns)} columns: {row!r}")
        table.append(["" if c is None else str(c) for c in row])
    return table


def _alignment(columns: Sequence[str], align: str | None) -> str:
    """Per column ``l`` or ``r``; by default the first column left, the others right."""
    if align is None:
        return LEFT + RIGHT * (len(columns) - 1)
    if len(align) != len(columns) or set(align) - {LEFT, RIGHT}:
        raise ValueError(f"align must be one of 'l'/'r' per column ({len(columns)}), got {align!r}")
    return align


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    """A GitHub markdown table; ``align`` is ``l``/``r`` per column (first left, others right)."""
    cells = _cells(columns, rows)
    sides = _alignment(columns, align)
    rule = ["---" if side == LEFT else "---:" for side in sides]
    return "\n".join("| " + " | ".join(line) + " |" for line in (cells[0], rule, *cells[1:]))


def text_table(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None, indent: int = 0
) -> str:
    """Columns padded to their widest cell, two spaces apart, for a terminal."""
    cells = _cells(columns, rows)
    sides = _alignment(columns, align)
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = []
    for line in cells:
        padded = [
            cell.ljust(width) if side == LEFT else cell.rjust(width)
            for cell, width, side in zip(line, widths, sides, strict=True)
        ]
        lines.append(" " * indent + "  ".join(padded).rstrip())
    return "\n".join(lines)


def pct(share: float | None, digits: int = 0, missing: str = "?") -> str:
    """``0.123`` -> ``12%`` (``digits`` decimals); ``missing`` for an unknown share."""
    return missing if share is None else f"{100 * share:.{digits}f}%"
