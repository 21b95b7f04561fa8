"""The exported model's tokenizer without torch: texts -> the text encoder's int64 ids.

:func:`load_tokenizer` picks the kind model.json names (``text.kind``, see
:mod:`pipeline.export.tokenizer`). :class:`WordPieceIds` runs the export's ``tokenizer.json``
(a ``corpusforge train --tokenizer bert-chinese|wordpiece:N|FILE`` model) with the ``tokenizers``
library. :class:`ClipTokenizer` is open_clip's CLIP tokenizer (``SimpleTokenizer``, clean
``lower``) re-implemented in numpy: the same byte-level BPE over the same vocabulary file (copied
into the export folder), the same text cleaning (ftfy, HTML unescape, whitespace, lower case) and
the same truncation (the last kept token becomes end-of-text). ``corpusforge export`` checks that
either gives the model's own tokenizer's ids for its verification texts.
"""

from __future__ import annotations

import gzip
import html
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import ftfy
import numpy as np
import regex

from pipeline.errors import UserInputError
from pipeline.export.manifest import WORDPIECE, tokenizer_kind

NAME = "open_clip SimpleTokenizer (clean=lower)"
_MERGES = 49152 - 256 - 2


@lru_cache
def _bytes_to_unicode() -> dict[int, str]:
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in codes), strict=True))


def _clean(text: str) -> str:
    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return " ".join(text.split()).strip().lower()


class ClipTokenizer:
    """Texts -> ``(n, context_length)`` int64 token ids, as open_clip's default tokenizer gives."""

    def __init__(self, vocab: str | Path, context_length: int) -> None:
        with gzip.open(vocab) as handle:
            merges_text = handle.read().decode("utf-8").split("\n")[1 : _MERGES + 1]
        merges = [tuple(line.split()) for line in merges_text]
        self._bytes = _bytes_to_unicode()
        words = list(self._bytes.values())
        words += [w + "</w>" for w in words] + ["".join(m) for m in merges]
        specials = ["<start_of_text>", "<end_of_text>"]
        self._encoder = {w: i for i, w in enumerate(words + specials)}
        self._ranks = {m: i for i, m in enumerate(merges)}
        self._cache: dict[str, str] = {t: t for t in specials}
        self._pattern = regex.compile(
            "|".join(specials) + r"""|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
            regex.IGNORECASE,
        )
        self.sot = self._encoder["<start_of_text>"]
        self.eot = self._encoder["<end_of_text>"]
        self.context_length = context_length

    def _bpe(self, token: str) -> str:
        if token in self._cache:
            return self._cache[token]
        word = (*token[:-1], token[-1] + "</w>")
        while len(word) > 1:
            pairs = set(zip(word, word[1:], strict=False))
            best = min(pairs, key=lambda pair: self._ranks.get(pair, float("inf")))
            if best not in self._ranks:
                break
            merged: list[str] = []
            i = 0
            while i < len(word):
                if i < len(word) - 1 and (word[i], word[i + 1]) == best:
                    merged.append(word[i] + word[i + 1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = tuple(merged)
        result = " ".join(word)
        self._cache[token] = result
        return result

    def encode(self, text: str) -> list[int]:
        """The BPE ids of one text, without start and end tokens."""
        ids: list[int] = []
        for token in regex.findall(self._pattern, _clean(text)):
            token = "".join(self._bytes[b] for b in token.encode("utf-8"))
            ids.extend(self._encoder[piece] for piece in self._bpe(token).split(" "))
        return ids

    def __call__(self, texts: list[str]) -> np.ndarray:
        """``(len(texts), context_length)`` int64 ids: start, the text's ids, end, zeros."""
        result = np.zeros((len(texts), self.context_length), dtype=np.int64)
        for row, text in enumerate(texts):
            ids = [self.sot, *self.encode(text), self.eot]
            if len(ids) > self.context_length:
                ids = ids[: self.context_length]
                ids[-1] = self.eot
            result[row, : len(ids)] = ids
        return result


class WordPieceIds:
    """Texts -> ``(n, context_length)`` int64 ids through an export's ``tokenizer.json``, which frames,
    truncates and pads by itself (``[CLS] text [SEP] [PAD]...``)."""

    def __init__(self, path: str | Path, context_length: int) -> None:
        from tokenizers import Tokenizer

        try:
            self._tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # noqa: BLE001 - the tokenizers library raises plain Exceptions
            raise UserInputError(f"{path}: not a tokenizers JSON file ({exc})") from exc
        padding, truncation = self._tokenizer.padding, self._tokenizer.truncation
        if (
            not padding
            or padding.get("length") != context_length
            or not truncation
            or truncation.get("max_length") != context_length
        ):
            raise UserInputError(
                f"{path}: does not pad and truncate to the context length {context_length} "
                "(not written by corpusforge export)"
            )
        self.context_length = context_length

    def __call__(self, texts: list[str]) -> np.ndarray:
        """``(len(texts), context_length)`` int64 ids (one ``encode`` per text: no thread pool)."""
        rows = [self._tokenizer.encode(text).ids for text in texts]
        return np.array(rows, dtype=np.int64).reshape(len(texts), self.context_length)


Tokenize = Callable[[list[str]], np.ndarray]


def load_tokenizer(folder: str | Path, manifest: dict[str, Any]) -> Tokenize:
    """The tokenizer of an exported model folder, as its model.json describes it."""
    path = Path(folder) / manifest["files"]["vocab"]
    context_length = int(manifest["text"]["context_length"])
    if tokenizer_kind(manifest) == WORDPIECE:
        return WordPieceIds(path, context_length)
    return ClipTokenizer(path, context_length)
