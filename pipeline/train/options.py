"""Options of ``corpusforge train``, built once from the command line."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from pipeline.errors import UserInputError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class TrainerOptions:
    """Everything one training run needs (the same on every rank)."""

    shards: str
    model: str = "corpusforge-tiny"
    pretrained: str = ""
    output: str = "train_output"
    val_shards: str = ""
    resampled: bool = False
    shard_shuffle: bool = True
    shuffle_buffer: int = 1000
    jpeg_draft: bool = True
    workers: int = 2
    batch_size: int = 64
    accum_freq: int = 1
    steps: int = 1000
    lr: float = 5e-4
    weight_decay: float = 0.2
    beta1: float = 0.9
    beta2: float = 0.98
    eps: float = 1e-6
    warmup_steps: int = 100
    grad_clip_norm: float = 0.0
    precision: str = "auto"
    device: str = "auto"
    threads: int = 0
    grad_checkpointing: bool = False
    seed: int = 0
    save_every: int = 500
    keep_checkpoints: int = 3
    resume: str = ""
    log_every: int = 10
    tensorboard: bool = True
    log_sample_keys: bool = False
    eval_every: int = 0
    eval_world: str = ""
    eval_world_images: int = 200
    eval_world_seed: int = 1234
    zeroshot_dir: str = ""
    zeroshot_templates: str = "simple"
    val_max_samples: int = 5000
    eval_batch_size: int = 256

    def __post_init__(self) -> None:
        positive = {
            "--batch-size": self.batch_size,
            "--accum-freq": self.accum_freq,
            "--steps": self.steps,
            "--log-every": self.log_every,
            "--eval-batch-size": self.eval_batch_size,
            "--val-max-samples": self.val_max_samples,
            "--eval-world-images": self.eval_world_images,
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


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Every option of ``corpusforge train``, with help and default."""
    d = TrainerOptions(shards="x")
    data = p.add_argument_group("data")
    data.add_argument(
        "--shards",
        required=True,
        help="WebDataset shards: brace patterns ('DIR/final/{000000..000099}.tar'), several joined "
        "with '::'; local paths or any fsspec URL",
    )
    data.add_argument("--val-shards", default=d.val_shards, help="held-out shards for retrieval eval")
    data.add_argument(
        "--resampled",
        action="store_true",
        help="draw shards with replacement (endless stream; needs no shard per worker)",
    )
    data.add_argument(
        "--shard-shuffle",
        action=argparse.BooleanOptionalAction,
        default=d.shard_shuffle,
        help="shuffle the shard order every epoch (same order on every rank)",
    )
    data.add_argument("--shuffle-buffer", type=int, default=d.shuffle_buffer, help="sample shuffle buffer")
    data.add_argument(
        "--jpeg-draft",
        action=argparse.BooleanOptionalAction,
        default=d.jpeg_draft,
        help="decode JPEGs at a reduced DCT scale (1/2, 1/4, 1/8) that keeps at least twice the model's "
        "input size: much less decoding work for large stored images",
    )
    data.add_argument("--workers", type=int, default=d.workers, help="data loader processes per rank")
    model = p.add_argument_group("model")
    model.add_argument("--model", default=d.model, help="open_clip model config (or corpusforge-tiny)")
    model.add_argument(
        "--pretrained", default=d.pretrained, help="initial weights: open_clip tag or file ('' = random)"
    )
    model.add_argument(
        "--grad-checkpointing", action="store_true", help="recompute activations to save memory"
    )
    opt = p.add_argument_group("optimisation")
    opt.add_argument("--batch-size", type=int, default=d.batch_size, help="samples per rank per micro-batch")
    opt.add_argument(
        "--accum-freq",
        type=int,
        default=d.accum_freq,
        help="micro-batches per optimiser step; the contrastive batch is batch x accum x ranks",
    )
    opt.add_argument("--steps", type=int, default=d.steps, help="optimiser steps in total")
    opt.add_argument("--lr", type=float, default=d.lr, help="peak learning rate (AdamW)")
    opt.add_argument("--weight-decay", type=float, default=d.weight_decay, help="AdamW weight decay")
    opt.add_argument("--beta1", type=float, default=d.beta1, help="AdamW beta1")
    opt.add_argument("--beta2", type=float, default=d.beta2, help="AdamW beta2")
    opt.add_argument("--eps", type=float, default=d.eps, help="AdamW epsilon")
    opt.add_argument("--warmup-steps", type=int, default=d.warmup_steps, help="linear warm-up steps")
    opt.add_argument("--grad-clip-norm", type=float, default=d.grad_clip_norm, help="clip norm (0 = off)")
    opt.add_argument(
        "--precision",
        default=d.precision,
        choices=PRECISIONS,
        help="auto: bf16 autocast on GPU, fp32 on CPU; fp16 adds a GradScaler (GPU only)",
    )
    opt.add_argument("--device", default=d.device, help="auto (GPU if visible), cpu or cuda")
    opt.add_argument(
        "--threads",
        type=int,
        default=d.threads,
        help="PyTorch CPU threads per process (0: PyTorch's default); 1 is best on a busy machine",
    )
    opt.add_argument("--seed", type=int, default=d.seed, help="seed of weights, data order and augmentation")
    out = p.add_argument_group("output and resume")
    out.add_argument("--output", default=d.output, help="folder for checkpoints, metrics and the model")
    out.add_argument("--save-every", type=int, default=d.save_every, help="checkpoint every N steps (0: end)")
    out.add_argument(
        "--keep-checkpoints", type=int, default=d.keep_checkpoints, help="newest checkpoints kept (0: all)"
    )
    out.add_argument(
        "--resume", default=d.resume, help="'latest' (newest in OUTPUT/checkpoints, if any) or a path"
    )
    out.add_argument("--log-every", type=int, default=d.log_every, help="log metrics every N steps")
    out.add_argument(
        "--tensorboard",
        action=argparse.BooleanOptionalAction,
        default=d.tensorboard,
        help="also write TensorBoard events to OUTPUT/tensorboard",
    )
    out.add_argument(
        "--log-sample-keys",
        action="store_true",
        help="write the keys each rank trained on to OUTPUT/sample_keys/rank_R.txt",
    )
    ev = p.add_argument_group("evaluation")
    ev.add_argument("--eval-every", type=int, default=d.eval_every, help="evaluate every N steps (0: end)")
    ev.add_argument(
        "--eval-world",
        default=d.eval_world,
        help="synthetic world folder for zero-shot and retrieval eval; generated there if missing",
    )
    ev.add_argument(
        "--eval-world-images", type=int, default=d.eval_world_images, help="images of a generated world"
    )
    ev.add_argument(
        "--eval-world-seed", type=int, default=d.eval_world_seed, help="seed of a generated world"
    )
    ev.add_argument(
        "--zeroshot-dir", default=d.zeroshot_dir, help="ImageFolder-style directory (class = sub-folder)"
    )
    ev.add_argument(
        "--zeroshot-templates",
        default=d.zeroshot_templates,
        help="'simple' (7 prompts), 'openai' (80) or a file with one '{}' prompt a line",
    )
    ev.add_argument(
        "--val-max-samples", type=int, default=d.val_max_samples, help="pairs read from --val-shards"
    )
    ev.add_argument("--eval-batch-size", type=int, default=d.eval_batch_size, help="eval forward batch")


def build_parser() -> argparse.ArgumentParser:
    """The ``corpusforge train`` command line on its own."""
    parser = argparse.ArgumentParser(
        prog="corpusforge train",
        description="Contrastive (CLIP) training on WebDataset shards.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_arguments(parser)
    return parser


def options_from_namespace(a: argparse.Namespace) -> TrainerOptions:
    """Frozen options from parsed arguments (raises ``UserInputError`` on bad values)."""
    return TrainerOptions(
        shards=a.shards,
        model=a.model,
        pretrained=a.pretrained,
        output=a.output,
        val_shards=a.val_shards,
        resampled=a.resampled,
        shard_shuffle=a.shard_shuffle,
        shuffle_buffer=a.shuffle_buffer,
        jpeg_draft=a.jpeg_draft,
        workers=a.workers,
        batch_size=a.batch_size,
        accum_freq=a.accum_freq,
        steps=a.steps,
        lr=a.lr,
        weight_decay=a.weight_decay,
        beta1=a.beta1,
        beta2=a.beta2,
        eps=a.eps,
        warmup_steps=a.warmup_steps,
        grad_clip_norm=a.grad_clip_norm,
        precision=a.precision,
        device=a.device,
        threads=a.threads,
        grad_checkpointing=a.grad_checkpointing,
        seed=a.seed,
        save_every=a.save_every,
        keep_checkpoints=a.keep_checkpoints,
        resume=a.resume,
        log_every=a.log_every,
        tensorboard=a.tensorboard,
        log_sample_keys=a.log_sample_keys,
        eval_every=a.eval_every,
        eval_world=a.eval_world,
        eval_world_images=a.eval_world_images,
        eval_world_seed=a.eval_world_seed,
        zeroshot_dir=a.zeroshot_dir,
        zeroshot_templates=a.zeroshot_templates,
        val_max_samples=a.val_max_samples,
        eval_batch_size=a.eval_batch_size,
    )


def options_from_args(argv: list[str] | None = None) -> TrainerOptions:
    """Parse ``corpusforge train`` arguments (errors exit with a usage message)."""
    parser = build_parser()
    try:
        return options_from_namespace(parser.parse_args(argv))
    except UserInputError as exc:
        parser.error(str(exc))
        raise
