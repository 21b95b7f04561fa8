"""Junk alt texts for the synthetic world: what real web captions often are instead of a
description (file names, URLs, prices, noise, boilerplate), for build_shards' caption rules to
find (``WorldSpec.junk_caption_fraction``). Drawn from their own random stream, so the pictures
and the other captions of a world are those of the same seed without junk.
"""

from __future__ import annotations

import random

# (kind, template); {n} is a number drawn per caption.
JUNK_TEMPLATES = (
    ("file_name", "IMG_{n:04d}.jpg"),
    ("file_name", "DSC{n:05d}"),
    ("url", "https://shop.example/p/{n}"),
    ("url", "contact sales{n}@example.com"),
    ("symbols", "$ {n}.99 !!"),
    ("symbols", "#{n} ★★★★★"),
    ("repeated", "wow!!!!!!!!"),
    ("short", "img"),
    ("boilerplate", "click to enlarge"),
)


def junk_caption_stream(seed: int) -> random.Random:
    """The random stream of the junk captions of the world of ``seed``."""
    return random.Random(f"junk-caption:{seed}")


def junk_caption(rng: random.Random) -> tuple[str, str]:
    """``(kind, caption)`` of one junk alt text drawn from ``rng``."""
    kind, template = rng.choice(JUNK_TEMPLATES)
    return kind, template.format(n=rng.randrange(10_000))
