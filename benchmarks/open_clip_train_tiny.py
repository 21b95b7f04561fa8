"""Run open_clip_train's ``main`` with corpusforge's bundled model configs registered.

Used by ``benchmarks/train.py`` under the separate open_clip_train venv (it imports nothing from
corpusforge)::

    python benchmarks/open_clip_train_tiny.py CONFIG_DIR [open_clip_train.main arguments ...]
"""

from __future__ import annotations

import sys


def main() -> None:
    """Register the config folder given first, then hand the other arguments to open_clip_train."""
    import open_clip
    from open_clip_train.main import main as train_main

    open_clip.add_model_config(sys.argv[1])
    train_main(sys.argv[2:])


if __name__ == "__main__":
    main()
