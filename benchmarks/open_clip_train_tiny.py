"""Run open_clip_train's ``main`` with corpusforge's bundled model configs registered.

Used by ``benchmarks/train.py`` under the separate open_clip_train venv (it imports nothing from
corpusforge, nor from the benchmark harness)::

    python benchmarks/open_clip_train_tiny.py CONFIG_DIR [open_clip_train.main arguments ...]
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Register the config folder given first, then hand the other arguments to open_clip_train."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if args else 2
    try:
        import open_clip
        from open_clip_train.main import main as train_main
    except ImportError as exc:
        print(
            f"{exc}: run this under the open_clip_train venv that benchmarks/train.py creates",
            file=sys.stderr,
        )
        return 1
    open_clip.add_model_config(args[0])
    train_main(args[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
