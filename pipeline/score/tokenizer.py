"""WordPiece tokenizers for text towers that read Chinese, saved with the weights they were trained with.

open_clip's CLIP tokenizer (byte-level BPE, 49408 tokens) splits a Chinese character into up to
three byte tokens it barely ever saw; a BERT-style WordPiece vocabulary has one token per Chinese
character and handles English words too. :class:`WordPieceTokenizer` wraps a ``tokenizers``
(Hugging Face, Rust) WordPiece tokenizer and behaves like open_clip's tokenizers: called with
a list of texts it returns a ``[N, context_length]`` LongTensor, ``[CLS] ... [SEP]`` then
``[PAD]`` (id 0), truncated so ``[SEP]`` always ends the text.

An open_clip text tower reading these ids needs its vocabulary size, the padding id and pooling
at ``[SEP]`` (:func:`text_config`). A checkpoint trained with such a tokenizer carries it: the
trainer's ``model.pt`` is ``{"state_dict": ..., "tokenizer": record}`` (open_clip's own loader
reads ``state_dict`` from such a dict), its resumable checkpoints hold the same ``tokenizer`` key;
:func:`checkpoint_tokenizer` finds it, so scoring, zero-shot and export use the same tokenizer
without being told. ``record`` is plain strings and numbers (``weights_only`` loading accepts it).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pipeline.errors import UserInputError

log = logging.getLogger(__name__)

RECORD_FORMAT = "corpusforge-wordpiece/1"
SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


class WordPieceTokenizer:
    """A BERT-style WordPiece tokenizer that returns padded id tensors, like open_clip's tokenizers."""

    def __init__(self, tokenizer_json: str, context_length: int, name: str = "wordpiece") -> None:
        from tokenizers import Tokenizer

        if context_length < 3:
            raise ValueError(f"context_length must be >= 3, got {context_length}")
        self.name = name
        self.tokenizer_json = tokenizer_json
        self.context_length = context_length
        self._tokenizer = Tokenizer.from_str(tokenizer_json)
        ids = {token: self._tokenizer.token_to_id(token) for token in ("[PAD]", "[CLS]", "[SEP]")}
        missing = [token for token, i in ids.items() if i is None]
        if missing:
            raise UserInputError(f"tokenizer {name}: no {', '.join(missing)} token in its vocabulary")
        self.pad_id, self.cls_id, self.eos_id = ids["[PAD]"], ids["[CLS]"], ids["[SEP]"]
        self.vocab_size = self._tokenizer.get_vocab_size(with_added_tokens=True)
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()

    def encode(self, text: str) -> list[int]:
        """The ids of one text with ``[CLS]``/``[SEP]``, cut to ``context_length`` (``[SEP]`` kept last)."""
        ids = self._tokenizer.encode(text, add_special_tokens=False).ids
        return [self.cls_id, *ids[: self.context_length - 2], self.eos_id]

    def decode(self, ids: list[int]) -> str:
        """The text of ``ids`` (special tokens dropped; WordPiece pieces joined)."""
        return self._tokenizer.decode(ids, skip_special_tokens=True)

    def __call__(self, texts: str | list[str], context_length: int | None = None) -> Any:
        import torch

        if isinstance(texts, str):
            texts = [texts]
        length = context_length or self.context_length
        out = torch.full((len(texts), length), self.pad_id, dtype=torch.long)
        for row, text in enumerate(texts):
            ids = self.encode(text)
            if len(ids) > length:
                ids = [*ids[: length - 1], self.eos_id]
            out[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out

    def record(self) -> dict[str, Any]:
        """What a checkpoint stores to rebuild this tokenizer (strings and numbers only)."""
        return {
            "format": RECORD_FORMAT,
            "name": self.name,
            "tokenizer_json": self.tokenizer_json,
            "context_length": self.context_length,
            "vocab_size": self.vocab_size,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any], source: str = "checkpoint") -> WordPieceTokenizer:
        """The tokenizer a checkpoint's ``tokenizer`` record describes."""
        if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
            raise UserInputError(f"{source}: its tokenizer record is not {RECORD_FORMAT!r}")
        return cls(
            record["tokenizer_json"], int(record["context_length"]), str(record.get("name", "wordpiece"))
        )

    def __getstate__(self) -> dict[str, Any]:  # picklable for data-loader workers and Spark
        return {"json": self.tokenizer_json, "length": self.context_length, "name": self.name}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["json"], state["length"], state["name"])  # type: ignore[misc]


def bert_tokenizer_json(vocab: list[str]) -> str:
    """A BERT WordPiece tokenizer (lower case without accents, one token per CJK character) as JSON:
    the same ids as the original BERT ``FullTokenizer`` (which cn_clip uses) for the same vocabulary."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

    model = models.WordPiece({token: i for i, token in enumerate(vocab)}, unk_token="[UNK]")
    tokenizer = Tokenizer(model)
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.add_special_tokens([token for token in SPECIALS if token in vocab])
    return tokenizer.to_str()


def vocab_file_tokenizer(path: str | Path, context_length: int, name: str) -> WordPieceTokenizer:
    """A BERT ``vocab.txt`` (one token a line, line number = id) as a tokenizer."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserInputError(f"--tokenizer {name}: cannot read {path} ({exc})") from exc
    # Lines end at "\n" only: BERT vocabularies hold tokens such as U+2028 that splitlines() splits at.
    vocab = [line.rstrip("\r") for line in text.split("\n")]
    if vocab and vocab[-1] == "":
        vocab.pop()
    if len(set(vocab)) != len(vocab):
        raise UserInputError(f"--tokenizer {name}: {path} repeats tokens; not a BERT vocab.txt")
    return WordPieceTokenizer(bert_tokenizer_json(vocab), context_length, name)


def train_wordpiece(texts: list[str], vocab_size: int, context_length: int) -> WordPieceTokenizer:
    """A WordPiece vocabulary of at most ``vocab_size`` tokens learnt from ``texts`` (deterministic)."""
    from tokenizers import Tokenizer, trainers

    tokenizer = Tokenizer.from_str(bert_tokenizer_json(list(SPECIALS)))
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, special_tokens=list(SPECIALS), show_progress=False
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return WordPieceTokenizer(tokenizer.to_str(), context_length, f"wordpiece:{vocab_size}")


def text_config(base: dict[str, Any], tokenizer: WordPieceTokenizer) -> dict[str, Any]:
    """An open_clip ``text_cfg`` for ``tokenizer``'s ids: its vocabulary size, ``[PAD]`` as padding and
    the text's feature taken at ``[SEP]`` (open_clip's ``eos`` pooling; CLIP's ``argmax`` pooling
    relies on its end token having the highest id)."""
    return {
        **base,
        "vocab_size": tokenizer.vocab_size,
        "context_length": tokenizer.context_length,
        "pad_id": tokenizer.pad_id,
        "eos_id": tokenizer.eos_id,
        "pool_type": "eos",
    }


def checkpoint_tokenizer(path: str | Path) -> WordPieceTokenizer | None:
    """The tokenizer saved in a local checkpoint file, or None (a plain state dict, an open_clip file).

    The file is memory-mapped, so looking costs no read of the weights.
    """
    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - not a zip checkpoint (old format, safetensors ...): no record
        return None
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("tokenizer"), dict):
        return WordPieceTokenizer.from_record(checkpoint["tokenizer"], str(path))
    return None
