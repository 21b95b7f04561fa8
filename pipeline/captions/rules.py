"""The caption rules of build_shards as pure functions of one (repaired) caption.

build_shards computes these per sample in its candidate tasks (``pipeline/build/candidates.py``)
and compares them with the options there (``pipeline/build/selection.py``); docs/build_shards.md
lists the rules and docs/thresholds.md the values LAION and DataComp used.
"""

from __future__ import annotations

import hashlib
import re

from pipeline.captions.language import cjk_script

# A file name as a whole caption: a name with an image or document extension ("IMG_1234.jpg",
# "image.png", "photo (2).JPEG"), or a camera/screenshot prefix followed by digits ("DSC00012",
# "IMG 2041", "PXL_20230101_123456"), or only digits and separators ("20190514_123456").
_EXTENSIONS = r"jpe?g|png|gif|webp|bmp|tiff?|heic|heif|svg|avif|ico|pdf|raw|cr2|nef|dng"
_PREFIXES = (
    r"img|dsc[nf]?|dcim|pxl|mvimg|pict?|sam|gopr|dji|wp|screenshot|screen ?shot|image|photo|picture|pic|"
    r"untitled|unnamed|file|scan|dc|p"
)
_FILE_NAME = re.compile(
    rf"^(?:[^\s/\\]+(?: [^\s/\\]+){{0,3}}\.(?:{_EXTENSIONS})"
    rf"|(?:{_PREFIXES})[\s_\-]*\d[\d_\-\s]*(?:\.(?:{_EXTENSIONS}))?"
    r"|\d[\d_\-\s]{5,})$",
    re.IGNORECASE,
)
_URL_OR_EMAIL = re.compile(
    r"(?:\b[a-z][a-z0-9+.\-]*://\S+|\bwww\.[a-z0-9\-]+\.\S+|\b[\w.+\-]+@[a-z0-9\-]+(?:\.[a-z0-9\-]+)*\.[a-z]{2,}\b)",
    re.IGNORECASE,
)
_SPACES = re.compile(r"\s+")
_COUNTED = ("han", "kana")  # scripts whose every character counts as a word


def caption_length(caption: str) -> int:
    """The caption's length for ``--min-caption-length``: characters after stripping white space,
    where a Han, kana or Hangul character counts 3 (its UTF-8 length).

    LAION's minimum of 5 characters was set on alphabetic alt text; counted in code points it
    drops complete CJK captions of two to four characters (``日落`` sunset, ``红色跑车`` red sports
    car: 11 of the 325 descriptive captions of ``benchmarks/caption_rules.py``, all of them CJK).
    Counting such a character as 3 keeps those and still drops a one-character caption, as
    ``cat`` is dropped. ``"a red car"`` -> 9, ``"日落"`` -> 6, ``"猫"`` -> 3.
    """
    text = caption.strip()
    return len(text) + 2 * sum(1 for character in text if cjk_script(character) is not None)


def word_count(caption: str) -> int:
    """Words of a caption: white-space separated tokens with a letter or digit, where every Han
    character and kana counts as a word of its own (Chinese and Japanese have no spaces).

    ``"a red car"`` -> 3, ``"一只猫"`` -> 3, ``"Tesla Model 3 白色"`` -> 5, ``"- -"`` -> 0.
    """
    words = 0
    for token in caption.split():
        cjk = sum(1 for character in token if cjk_script(character) in _COUNTED)
        other = any(c.isalnum() and cjk_script(c) not in _COUNTED for c in token)
        words += cjk + int(other)
    return words


def symbol_share(caption: str) -> float:
    """Share of the caption's non-space characters that are not letters (digits, punctuation,
    symbols, emoji); 0.0 for an empty caption (the length rules judge those)."""
    visible = [character for character in caption if not character.isspace()]
    if not visible:
        return 0.0
    return sum(1 for character in visible if not character.isalpha()) / len(visible)


def looks_like_file_name(caption: str) -> bool:
    """True when the whole caption is a file name (``IMG_1234.jpg``, ``DSC00012``, ``image.png``)."""
    return bool(_FILE_NAME.match(caption.strip()))


def longest_run(caption: str) -> int:
    """The longest run of one repeated non-space, non-digit character (``'!!!!'`` -> 4).

    Digits are left out: ``1000000`` is a number, not noise.
    """
    longest, run, previous = 0, 0, ""
    for character in caption:
        if character == previous and not character.isspace() and not character.isdigit():
            run += 1
        else:
            run = 1 if not character.isspace() and not character.isdigit() else 0
        previous = character
        longest = max(longest, run)
    return longest


def has_url_or_email(caption: str) -> bool:
    """True when the caption contains a URL (``scheme://...``, ``www....``) or an e-mail address."""
    return bool(_URL_OR_EMAIL.search(caption))


def caption_key(caption: str) -> int | None:
    """The caption's identity for the boilerplate rule: a signed 64-bit digest of the caption
    case-folded with white space collapsed (``"Click to  Enlarge"`` = ``"click to enlarge"``);
    None for an empty caption (the length rules judge those)."""
    normal = _SPACES.sub(" ", caption.casefold()).strip()
    if not normal:
        return None
    return int.from_bytes(hashlib.blake2b(normal.encode("utf-8"), digest_size=8).digest(), "big", signed=True)


# What build_shards' caption rules look at, in ``CAPTION_FEATURES`` order.
CAPTION_FEATURES = (
    "caption_length",
    "caption_words",
    "symbol_share",
    "file_name",
    "repeated_run",
    "has_url",
    "caption_key",
)


def caption_features(caption: str) -> tuple[int, int, float, bool, int, bool, int | None]:
    """The measures of one **repaired** caption that the caption rules compare with their options
    (``CAPTION_FEATURES`` order): length (:func:`caption_length`), words, symbol share,
    file name, longest character run, URL or e-mail, boilerplate key."""
    return (
        caption_length(caption),
        word_count(caption),
        symbol_share(caption),
        looks_like_file_name(caption),
        longest_run(caption),
        has_url_or_email(caption),
        caption_key(caption),
    )
