"""Logging set-up shared by the entry points."""

from __future__ import annotations

import logging
import os


def setup_logging(level: str | None = None) -> None:
    """Log to stderr with timestamps; level from ``level`` or $CORPUSFORGE_LOG_LEVEL (INFO)."""
    logging.basicConfig(
        level=(level or os.environ.get("CORPUSFORGE_LOG_LEVEL", "INFO")).upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("py4j", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
