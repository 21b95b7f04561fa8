"""Where the benchmarks live and where they write."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BENCHMARKS = REPO / "benchmarks"
WORK = BENCHMARKS / "_work"  # scratch and results of every benchmark (git-ignored)


def work_dir(*parts: str, root: Path = WORK) -> Path:
    """``root/PARTS...`` (``benchmarks/_work`` by default), created if missing."""
    folder = root.joinpath(*parts)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def shown(path: Path) -> str:
    """``path`` relative to the repository when it is inside it (for printed tables)."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)
