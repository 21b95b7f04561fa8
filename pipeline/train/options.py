"""Options of ``corpusforge train``: every default and command-line option written once, here."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from pipeline.cli_options import option, options_parser, parse_options
from pipeline.errors import UserInputError
from pipeline.storage import storage_url

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DATA, _MODEL, _OPT = "data", "model", "optimisation"
_OUT, _EVAL = "output and resume", "evaluation"


@dataclass(frozen=True)
class TrainerOptions:
    """Everything one training run needs (the same on every rank)."""

    shards: str = option(
        parse=storage_url,
        help="WebDataset shards: brace patterns ('DIR/final/{000000..000099}.tar'), several joined "
        "with '::'; local paths or any fsspec URL",
        group=_DATA,
    )
    model: str = option("corpusforge-tiny", help="open_clip model config (or corpusforge-tiny)", group=_MODEL)
    pretrained: str = option(
        "",
        parse=storage_url,
        help="initial weights: open_clip tag or file, local or any fsspec URL ('' = random)",
        group=_MODEL,
    )
    tokenizer: str = option(
        "clip",
        help="text tokenizer: clip (open_clip's for --model), bert-chinese (Chinese-CLIP's BERT WordPiece "
        "vocabulary, from the cn_clip package), wordpiece:N (learnt from the training captions, N tokens "
        "at most) or a tokenizer.json / vocab.txt file; saved with the checkpoints and model.pt",
        group=_MODEL,
    )
    output: str = option(
        "train_output",
        parse=storage_url,
        help="folder for checkpoints, metrics and the model: local or any fsspec URL (s3://bucket/run)",
        group=_OUT,
    )
    val_shards: str = option("", parse=storage_url, help="held-out shards for retrieval eval", group=_DATA)
    resampled: bool = option(
        False, help="draw shards with replacement (endless stream; needs no shard per worker)", group=_DATA
    )
    shard_shuffle: bool = option(
        True, toggle=True, help="shuffle the shard order every epoch (same order on every rank)", group=_DATA
    )
    shuffle_buffer: int = option(1000, help="sample shuffle buffer", group=_DATA)
    jpeg_draft: bool = option(
        True,
        toggle=True,
        help="decode JPEGs at a reduced DCT scale (1/2, 1/4, 1/8) that keeps at least twice the model's "
        "input size: much less decoding work for large stored images",
        group=_DATA,
    )
    workers: int = option(2, help="data loader processes per rank", group=_DATA)
    batch_size: int = option(64, help="samples per rank per micro-batch", group=_OPT)
    accum_freq: int = option(
        1, help="micro-batches per optimiser step; the contrastive batch is batch x accum x ranks", group=_OPT
    )
    steps: int = option(1000, help="optimiser steps in total", group=_OPT)
    lr: float = option(5e-4, help="peak learning rate (AdamW)", group=_OPT)
    weight_decay: float = option(0.2, help="AdamW weight decay", group=_OPT)
    beta1: float = option(0.9, help="AdamW beta1", group=_OPT)
    beta2: float = option(0.98, help="AdamW beta2", group=_OPT)
    eps: float = option(1e-6, help="AdamW epsilon", group=_OPT)
    warmup_steps: int = option(100, help="linear warm-up steps", group=_OPT)
    grad_clip_norm: float = option(0.0, help="clip norm (0 = off)", group=_OPT)
    local_loss: bool = option(
        False,
        help="several processes: each computes the loss of its own samples against all (open_clip's "
        "--local-loss; less memory for large batches)",
        group=_OPT,
    )
    gather_with_grad: bool = option(
        False,
        help="several processes: gather features with their gradients (open_clip's --gather-with-grad)",
        group=_OPT,
    )
    precision: str = option(
        "auto",
        choices=PRECISIONS,
        help="auto: bf16 autocast on GPU, fp32 on CPU; fp16 adds a GradScaler (GPU only)",
        group=_OPT,
    )
    device: str = option("auto", help="auto (GPU if visible), cpu or cuda", group=_OPT)
    threads: int = option(
        0,
        help="PyTorch CPU threads per process (0: PyTorch's default); 1 is best on a busy machine",
        group=_OPT,
    )
    grad_checkpointing: bool = option(False, help="recompute activations to save memory", group=_MODEL)
    seed: int = option(0, help="seed of weights, data order and augmentation", group=_OPT)
    save_every: int = option(500, help="checkpoint every N steps (0: end)", group=_OUT)
    keep_checkpoints: int = option(3, help="newest checkpoints kept (0: all)", group=_OUT)
    resume: str = option(
        "",
        parse=storage_url,
        help="'latest' (newest complete one in OUTPUT/checkpoints, if any) or a checkpoint path or URL",
        group=_OUT,
    )
    log_every: int = option(10, help="log metrics every N steps", group=_OUT)
    tensorboard: bool = option(
        True, toggle=True, help="also write TensorBoard events to OUTPUT/tensorboard", group=_OUT
    )
    log_sample_keys: bool = option(
        False, help="write the keys each rank trained on to OUTPUT/sample_keys/rank_R.txt", group=_OUT
    )
    eval_every: int = option(0, help="evaluate every N steps (0: end)", group=_EVAL)
    eval_world: str = option(
        "",
        parse=storage_url,
        help="labelled image table for zero-shot and retrieval eval: a folder with world.json (class "
        "names) and world.parquet (file, label, true_caption), as `corpusforge synth` writes (local or "
        "any fsspec URL: copied to the local cache)",
        group=_EVAL,
    )
    zeroshot_dir: str = option(
        "",
        parse=storage_url,
        help="ImageFolder-style directory (class = sub-folder), local or any fsspec URL (copied to the "
        "local cache)",
        group=_EVAL,
    )
    zeroshot_templates: str = option(
        "simple",
        parse=storage_url,
        help="'simple' (7 prompts), 'openai' (80) or a file (path or URL) with one '{}' prompt a line",
        group=_EVAL,
    )
    val_max_samples: int = option(5000, help="pairs read from --val-shards", group=_EVAL)
    eval_batch_size: int = option(256, help="eval forward batch", group=_EVAL)

    def __post_init__(self) -> None:
        positive = {
            "--batch-size": self.batch_size,
            "--accum-freq": self.accum_freq,
            "--steps": self.steps,
            "--log-every": self.log_every,
            "--eval-batch-size": self.eval_batch_size,
            "--val-max-samples": self.val_max_samples,
        }
        for flag, value in positive.items():
            if value < 1:
                raise UserInputError(f"{flag} must be >= 1, got {value}")
        non_negative = {
            "--workers": self.workers,
            "--shuffle-buffer": self.shuffle_buffer,
            "--warmup-steps": self.warmup_steps,
            "--save-every": self.save_every,
            "--eval-every": self.eval_every,
            "--keep-checkpoints": self.keep_checkpoints,
            "--grad-clip-norm": self.grad_clip_norm,
            "--weight-decay": self.weight_decay,
            "--threads": self.threads,
        }
        for flag, value in non_negative.items():
            if value < 0:
                raise UserInputError(f"{flag} must be >= 0, got {value}")
        if self.lr <= 0:
            raise UserInputError(f"--lr must be > 0, got {self.lr}")
        if self.precision not in PRECISIONS:
            raise UserInputError(f"--precision must be one of {PRECISIONS}, got {self.precision!r}")
        if not self.shards.strip():
            raise UserInputError("--shards names no shard")

    @property
    def has_eval(self) -> bool:
        return bool(self.eval_world or self.zeroshot_dir or self.val_shards)


def build_parser() -> argparse.ArgumentParser:
    """The ``corpusforge train`` command line on its own."""
    return options_parser(
        TrainerOptions, "corpusforge train", "Contrastive (CLIP) training on WebDataset shards."
    )


def options_from_args(argv: list[str] | None = None) -> TrainerOptions:
    """Parse ``corpusforge train`` arguments (errors exit with a usage message)."""
    return parse_options(TrainerOptions, build_parser(), argv)
