"""Language identification of captions: py3langid's model (shipped inside the package) plus scripts.

Chosen over lingua and pycld2 by ``benchmarks/langid.py`` (docs/benchmarks.md, "Language
identification"): lingua's high-accuracy mode is a few points more accurate on 1-3 word captions
but about 15x slower and needs over 1 GB per process; pycld2 is the fastest and the least
accurate on short captions.

The model is restricted to ``LANGUAGES``, the 71 languages py3langid shares with lingua's list of
75 widely written ones: py3langid's 140 include regional languages (Aragonese, Ligurian,
Extremaduran, ...) that it picks for short Spanish or Italian captions; restricted, it is right on
95.7% of the sample instead of 90.5%.

Chinese, Japanese and Korean are told apart by their scripts before the model is asked: a caption
with Hangul is ``ko``, one with kana ``ja``, one with Han characters (and neither) ``zh``, even
when Latin words outnumber them (``Tesla Model 3 白色 汽车``, where the model says ``en``). Their
confidence is the share of the caption's letters written in that script. Other captions get
py3langid's language and its normalised probability. Captions without a letter (empty, digits,
punctuation, emoji) are not guessed: ``UNDETERMINED`` with confidence 0.
"""

from __future__ import annotations

import logging
import unicodedata
from functools import cache

log = logging.getLogger(__name__)

UNDETERMINED = "und"  # ISO 639-2 code for "undetermined"
MODEL_NAME = "py3langid-0.4+71+cjk-scripts-1"  # recorded in the score job's fingerprint
# ISO 639-1 codes of the languages the model may answer (py3langid's labels that lingua also has).
_CODES = """af ar az be bg bn bs ca cs cy da de el en eo es et eu fa fi fr ga gu he hi hr hu hy id is it ja
ka kk ko la lg lt lv mk mn mr ms nl nn pa pl pt ro ru sk sl sn so sq sr st sv sw ta te th tl tr uk ur vi
xh yo zh zu"""
LANGUAGES = tuple(_CODES.split())


def cjk_script(character: str) -> str | None:
    """``hangul``, ``kana`` or ``han`` for a CJK letter, else None."""
    code = ord(character)
    if code < 0x1100:
        return None
    if 0xAC00 <= code <= 0xD7AF or 0x1100 <= code <= 0x11FF or 0x3130 <= code <= 0x318F:
        return "hangul"
    if 0x3040 <= code <= 0x30FF or 0x31F0 <= code <= 0x31FF or 0xFF66 <= code <= 0xFF9F:
        return "kana"
    if unicodedata.name(character, "").startswith("CJK UNIFIED IDEOGRAPH"):
        return "han"
    return None


def cjk_language(caption: str) -> tuple[str, float] | None:
    """``(ko|ja|zh, share of letters in its scripts)`` when the caption has CJK letters, else None."""
    letters = 0
    counts = {"hangul": 0, "kana": 0, "han": 0}
    for character in caption:
        if character.isalpha():
            letters += 1
            script = cjk_script(character)
            if script is not None:
                counts[script] += 1
    if counts["hangul"]:
        return "ko", counts["hangul"] / letters
    if counts["kana"]:
        return "ja", (counts["kana"] + counts["han"]) / letters
    if counts["han"]:
        return "zh", counts["han"] / letters
    return None


class LanguageIdentifier:
    """ISO 639-1 language code and confidence of a caption; build once per process (~0.5 s)."""

    def __init__(self) -> None:
        from py3langid.langid import MODEL_FILE
        from py3langid.langid import LanguageIdentifier as _Model

        self._model = _Model.from_model_file(MODEL_FILE, norm_probs=True)
        self._model.set_languages(LANGUAGES)

    def identify(self, caption: str) -> tuple[str, float]:
        """``(language, confidence in [0, 1])`` of ``caption``; ``("und", 0.0)`` without a letter."""
        if not any(character.isalpha() for character in caption):
            return UNDETERMINED, 0.0
        found = cjk_language(caption)
        if found is not None:
            return found
        language, confidence = self._model.classify(caption)
        return str(language), float(confidence)


@cache
def shared_identifier() -> LanguageIdentifier:
    """The process's one identifier (the score step loads it in its per-worker ``setup``)."""
    log.info("loading the language identifier (%s)", MODEL_NAME)
    return LanguageIdentifier()
