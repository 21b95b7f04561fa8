"""Unicode repair of captions with ftfy, before they are scored and written to final shards.

Alt texts scraped from the web carry mojibake (``cafÃ©`` for ``café``), HTML entities
(``&amp;``), terminal escapes and control characters. ftfy undoes them. Two of its default
fixes are turned off because they are not repairs but rewrites of valid text: curly quotes stay
curly, and full-width forms (the ``，`` and ``：`` of Chinese and Japanese captions) stay full
width; otherwise most CJK captions would count as "repaired".
"""

from __future__ import annotations

from functools import cache

import ftfy

# Bump when the configuration changes: the score job records it in its fingerprint.
REPAIR_VERSION = 1


@cache
def _config() -> ftfy.TextFixerConfig:
    return ftfy.TextFixerConfig(
        uncurl_quotes=False, fix_character_width=False, normalization="NFC", explain=False
    )


def repair_caption(caption: str) -> tuple[str, bool]:
    """``(repaired caption, whether ftfy changed it)``; an empty caption stays empty."""
    if not caption:
        return caption, False
    fixed = ftfy.fix_text(caption, config=_config())
    return fixed, fixed != caption
