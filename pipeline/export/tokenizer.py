"""The tokenizer an export carries: the file a client tokenizes with and model.json's ``text`` section.

Two kinds, the ones ``corpusforge train`` produces:

- ``clip-bpe``: open_clip's default CLIP tokenizer; the folder gets its BPE merges file
  (``bpe_simple_vocab_16e6.txt.gz``), which :class:`pipeline.serve.tokenizer.ClipTokenizer` reads.
- ``wordpiece``: a checkpoint trained with ``--tokenizer bert-chinese|wordpiece:N|FILE``
  (:class:`pipeline.score.tokenizer.WordPieceTokenizer`); the folder gets ``tokenizer.json``, the
  checkpoint's ``tokenizers`` JSON with the trainer's framing built in: ``[CLS] text [SEP]``,
  truncated to ``context_length`` (``[SEP]`` kept last), padded with ``[PAD]`` to
  ``context_length``. So ``tokenizers.Tokenizer.from_file("tokenizer.json").encode(text).ids`` is
  already the text encoder's input row, in any language ``tokenizers`` runs in (Python, Rust,
  JavaScript through transformers.js).

Any other tokenizer (SigLIP's, a Hugging Face text tower's, ...) is refused.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from pipeline.errors import UserInputError
from pipeline.export.manifest import CLIP_BPE, VOCAB, WORDPIECE, WORDPIECE_FILE
from pipeline.score.tokenizer import WordPieceTokenizer
from pipeline.serve.tokenizer import NAME as CLIP_NAME


def text_section(name: str, tokenizer: Any) -> dict[str, Any]:
    """model.json's ``text`` section for a loaded model's tokenizer; ``UserInputError`` for others."""
    from open_clip.tokenizer import SimpleTokenizer

    if isinstance(tokenizer, WordPieceTokenizer):
        return {
            "kind": WORDPIECE,
            "name": tokenizer.name,
            "tokenizer": f"WordPiece ({tokenizer.name}, tokenizers library)",
            "vocab": WORDPIECE_FILE,
            "context_length": int(tokenizer.context_length),
            "vocab_size": int(tokenizer.vocab_size),
            "start_id": int(tokenizer.cls_id),
            "end_id": int(tokenizer.eos_id),
            "pad_id": int(tokenizer.pad_id),
        }
    if (
        type(tokenizer) is not SimpleTokenizer
        or tokenizer.reduction_fn is not None
        or (tokenizer.clean_fn.__name__ != "_clean_lower")
    ):
        raise UserInputError(
            f"{name}: its tokenizer ({type(tokenizer).__name__}) is neither open_clip's default CLIP "
            "tokenizer nor a corpusforge train WordPiece tokenizer, the ones the server reproduces"
        )
    return {
        "kind": CLIP_BPE,
        "name": "clip",
        "tokenizer": CLIP_NAME,
        "vocab": VOCAB,
        "context_length": int(tokenizer.context_length),
        "vocab_size": int(tokenizer.vocab_size),
        "start_id": int(tokenizer.sot_token_id),
        "end_id": int(tokenizer.eot_token_id),
        "pad_id": 0,
    }


def write_tokenizer(tokenizer: Any, section: dict[str, Any], folder: Path) -> None:
    """Write the file ``section`` names into ``folder``."""
    if section["kind"] == WORDPIECE:
        (folder / section["vocab"]).write_text(standalone_json(tokenizer), encoding="utf-8")
    else:
        from open_clip.tokenizer import default_bpe

        shutil.copyfile(default_bpe(), folder / section["vocab"])


def standalone_json(tokenizer: WordPieceTokenizer) -> str:
    """The tokenizer's JSON with ``[CLS] $A [SEP]``, truncation and padding to its context length,
    so a plain ``encode`` gives the ids :meth:`WordPieceTokenizer.__call__` gives."""
    from tokenizers import Tokenizer, processors

    framed = Tokenizer.from_str(tokenizer.tokenizer_json)
    framed.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        special_tokens=[("[CLS]", tokenizer.cls_id), ("[SEP]", tokenizer.eos_id)],
    )
    framed.enable_truncation(max_length=tokenizer.context_length)
    framed.enable_padding(
        direction="right", pad_id=tokenizer.pad_id, pad_token="[PAD]", length=tokenizer.context_length
    )
    return framed.to_str(pretty=True)
