"""``corpusforge train``: the training run from options to checkpoints, metrics and a model file.

Outputs in ``--output`` (a local folder or any fsspec URL, see :mod:`pipeline.train.output`):
``checkpoints/step_NNNNNNNN.pt`` (resumable), ``model.pt`` (the final weights as a plain state
dict, for ``jobs/score.py --pretrained``), ``metrics.jsonl``, ``metrics.csv``, ``tensorboard/``
and ``summary.json``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, replace
from pathlib import Path
from typing import IO, Any

from tqdm import tqdm

from pipeline.errors import UserInputError
from pipeline.remote import exists
from pipeline.remote_cache import stage
from pipeline.score.model import check_model, register_configs, weights_file
from pipeline.score.tokenizer import WordPieceTokenizer, checkpoint_tokenizer, text_config
from pipeline.train.checkpoint import (
    FORMAT,
    atomic_save,
    load_checkpoint,
    prune_checkpoints,
    resolve_resume,
    save_checkpoint,
)
from pipeline.train.data import Position, StreamConfig, TrainStream, check_layout
from pipeline.train.distributed import DistInfo, all_gather_objects, barrier, init_distributed, shutdown
from pipeline.train.evaluate import (
    EvalSet,
    check_world,
    evaluate,
    folder_eval_set,
    load_templates,
    shard_eval_set,
    world_eval_sets,
)
from pipeline.train.loss import clip_loss_module
from pipeline.train.metrics import MetricsLogger
from pipeline.train.options import TrainerOptions
from pipeline.train.output import RunOutput
from pipeline.train.schedule import cosine_lr, set_lr
from pipeline.train.shardlist import check_shards_exist, expand_shards, shard_sizes
from pipeline.train.step import StepContext, train_step
from pipeline.train.tokenizer_choice import build_tokenizer, check_tokenizer

log = logging.getLogger(__name__)


def train(options: TrainerOptions) -> dict[str, Any]:
    """Train (or resume) a CLIP model; returns the run summary (also in ``OUTPUT/summary.json``)."""
    info = init_distributed(options.device)
    try:
        return _Run(options, info).run()
    finally:
        shutdown(info)


def resolve_precision(precision: str, device: str) -> str:
    """``auto`` is bf16 on a GPU and fp32 on the CPU; fp16 needs a GPU (its GradScaler does)."""
    on_gpu = device.startswith("cuda")
    if precision == "auto":
        return "bf16" if on_gpu else "fp32"
    if precision == "fp16" and not on_gpu:
        raise UserInputError("--precision fp16 needs a GPU; use bf16 or fp32 on the CPU")
    return precision


def weights_digest(model: Any) -> str:
    """SHA-256 of every parameter and buffer, in state-dict order (equal weights, equal digest)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class _Run:
    """One process's share of a training run."""

    def __init__(self, options: TrainerOptions, info: DistInfo) -> None:
        self.o = options
        self.info = info
        self.output = RunOutput(options.output)
        self.checkpoints = self.output.file("checkpoints")
        self.workers = max(1, options.workers)
        self.precision = resolve_precision(options.precision, info.device)
        self.eval_sets: list[EvalSet] | None = None
        self.eval_world: Path | None = None  # local copies of remote evaluation folders
        self.zeroshot_dir: Path | None = None
        self.keys_file: IO[str] | None = None
        self.tokenizer: WordPieceTokenizer | None = None  # None: open_clip's own for --model
        self.urls: tuple[str, ...] = ()  # the training shards (a learnt vocabulary reads their captions)

    # -- set-up -------------------------------------------------------------------------------
    def _check_inputs(self) -> tuple[StreamConfig, list[str]]:
        import open_clip

        register_configs()
        if self.o.model not in open_clip.list_models():
            raise UserInputError(f"--model {self.o.model!r} is not an open_clip model")
        config = open_clip.get_model_config(self.o.model) or {}
        if "init_logit_bias" in config or "multimodal_cfg" in config:
            raise UserInputError(
                f"--model {self.o.model} needs another loss (SigLIP's sigmoid loss or CoCa's captioning "
                "loss); corpusforge train implements the CLIP contrastive loss only"
            )
        if self.o.pretrained:
            check_model(self.o.model, self.o.pretrained)
        urls = expand_shards(self.o.shards)
        check_shards_exist(urls)
        config = StreamConfig(
            tuple(urls),
            self.o.batch_size,
            self.o.seed,
            self.o.resampled,
            self.o.shard_shuffle,
            self.o.shuffle_buffer,
        )
        check_layout(config, self.info.world_size, self.o.workers)
        val_urls = expand_shards(self.o.val_shards) if self.o.val_shards else []
        if val_urls:
            check_shards_exist(val_urls, "--val-shards")
        if self.o.eval_world:
            check_world(self.o.eval_world)
        if self.o.zeroshot_dir and not exists(self.o.zeroshot_dir, "--zeroshot-dir", folder=True):
            raise UserInputError(f"--zeroshot-dir {self.o.zeroshot_dir}: no such directory")
        load_templates(self.o.zeroshot_templates)
        check_tokenizer(self.o.tokenizer)
        if self.info.is_main:  # only rank 0 evaluates: it copies remote folders here, before training
            if self.o.eval_world:
                self.eval_world = stage(self.o.eval_world, "--eval-world")
            if self.o.zeroshot_dir:
                self.zeroshot_dir = stage(self.o.zeroshot_dir, "--zeroshot-dir")
        sizes = shard_sizes(urls)
        if sizes and self.info.is_main:
            log.info("%d shards, %d samples per sizes.json", len(urls), sum(sizes.values()))
        return config, val_urls

    def _resolve_tokenizer(
        self, checkpoint: dict[str, Any] | None, weights: str, urls: list[str]
    ) -> WordPieceTokenizer | None:
        """The resumed checkpoint's tokenizer, else the one ``--pretrained`` was trained with, else
        ``--tokenizer`` (a learnt vocabulary is learnt on rank 0 and sent to every rank)."""
        import open_clip

        saved, source = None, ""
        if checkpoint is not None and checkpoint.get("tokenizer"):
            saved, source = WordPieceTokenizer.from_record(checkpoint["tokenizer"], "--resume"), "--resume"
        elif weights and Path(weights).is_file():
            saved, source = checkpoint_tokenizer(weights), "--pretrained"
        if saved is not None:
            if self.o.tokenizer not in ("clip", saved.name):
                raise UserInputError(
                    f"--tokenizer {self.o.tokenizer}: the {source} checkpoint was trained with tokenizer "
                    f"{saved.name!r}; leave --tokenizer out to keep using it"
                )
            return saved
        if checkpoint is not None and self.o.tokenizer != "clip":
            raise UserInputError(
                f"--resume: the checkpoint was trained with the clip tokenizer, not {self.o.tokenizer}"
            )
        context = int(
            (open_clip.get_model_config(self.o.model) or {}).get("text_cfg", {}).get("context_length", 77)
        )
        built = build_tokenizer(self.o.tokenizer, context, list(self.urls)) if self.info.is_main else None
        if built is None and self.o.tokenizer == "clip":
            return None
        record = all_gather_objects(self.info, built.record() if built is not None else None)[0]
        return built if built is not None else WordPieceTokenizer.from_record(record)

    def _build_model(self, checkpoint: dict[str, Any] | None = None) -> tuple[Any, Any, Any, Any]:
        import open_clip
        import torch

        torch.manual_seed(self.o.seed)  # the same initial weights on every rank
        weights = weights_file(self.o.pretrained)  # a remote file: its local copy, one per machine
        self.tokenizer = self._resolve_tokenizer(checkpoint, weights, list(self.urls))
        text: dict[str, Any] = {}
        if self.tokenizer is not None:
            base = (open_clip.get_model_config(self.o.model) or {}).get("text_cfg", {})
            text = {"text_cfg": text_config(base, self.tokenizer)}
            torch.manual_seed(self.o.seed)  # learning a vocabulary must not change the initial weights
        try:
            model, preprocess_train, preprocess_val = open_clip.create_model_and_transforms(
                self.o.model,
                pretrained=weights or None,
                device=self.info.device,
                weights_only=True,
                **text,
            )
        except Exception as exc:  # noqa: BLE001 - hub, unpickling and shape errors have many types
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            raise UserInputError(
                f"cannot create {self.o.model} with weights {self.o.pretrained or 'random'!r}: "
                f"{type(exc).__name__}: {first}"
            ) from exc
        if self.o.grad_checkpointing:
            model.set_grad_checkpointing(True)
        tokenizer = self.tokenizer if self.tokenizer is not None else open_clip.get_tokenizer(self.o.model)
        if self.tokenizer is not None and self.info.is_main:
            log.info("tokenizer %s: %d tokens", self.tokenizer.name, self.tokenizer.vocab_size)
        return model, preprocess_train, preprocess_val, tokenizer

    def _optimizer(self, model: Any) -> Any:
        import torch

        # open_clip's rule: no weight decay on gains, biases, norms and the temperature.
        def exclude(name: str, p: Any) -> bool:
            return p.ndim < 2 or "bn" in name or "ln" in name or "bias" in name or "logit_scale" in name

        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        groups = [
            {"params": [p for n, p in named if exclude(n, p)], "weight_decay": 0.0},
            {"params": [p for n, p in named if not exclude(n, p)], "weight_decay": self.o.weight_decay},
        ]
        # The fused kernel: one pass over all parameters instead of a loop of small ops per tensor.
        return torch.optim.AdamW(
            groups, lr=self.o.lr, betas=(self.o.beta1, self.o.beta2), eps=self.o.eps, fused=True
        )

    def _autocast(self) -> AbstractContextManager[Any]:
        import torch

        if self.precision == "fp32":
            return nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(device_type=self.info.device.split(":")[0], dtype=dtype)

    def _restore_data(self, data: dict[str, Any]) -> tuple[dict[int, Position], int]:
        same = (
            data.get("world_size") == self.info.world_size
            and data.get("workers") == self.workers
            and data.get("batch_size") == self.o.batch_size
            and data.get("seed") == self.o.seed
            and data.get("resampled") == self.o.resampled
        )
        ranks = data.get("ranks", [])
        if same and len(ranks) == self.info.world_size:
            mine = ranks[self.info.rank]
            positions = {int(w): Position.from_dict(p) for w, p in mine["positions"].items()}
            return positions, int(mine["batches"])
        # Another layout reads the shards differently: continue from a fresh epoch instead.
        epoch = 1 + max((p["epoch"] for r in ranks for p in r["positions"].values()), default=-1)
        if self.info.is_main:
            log.warning(
                "the checkpoint's data layout (processes, workers, batch size, seed, resampling) differs "
                "from this run's: the data stream restarts at epoch %d instead of resuming exactly",
                epoch,
            )
        return {w: Position(epoch=epoch) for w in range(self.workers)}, 0

    # -- the run ------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        try:
            return self._run()
        finally:
            self.output.close()

    def _run(self) -> dict[str, Any]:
        import torch
        from torch.utils.data import DataLoader

        config, val_urls = self._check_inputs()
        if self.info.is_main:
            self.output.remove_temporaries()
        if self.o.threads:
            torch.set_num_threads(self.o.threads)
        resume = resolve_resume(self.o.resume, self.checkpoints)
        checkpoint = load_checkpoint(resume) if resume else None
        if checkpoint is not None and checkpoint.get("name") != self.o.model:
            raise UserInputError(
                f"--resume {resume}: checkpoint of model {checkpoint.get('name')!r}, not {self.o.model!r}"
            )
        self.urls = config.urls
        model, preprocess_train, preprocess_val, tokenizer = self._build_model(checkpoint)
        side = getattr(model.visual, "image_size", None)
        if self.o.jpeg_draft and side:
            config = replace(config, decode_side=2 * max(side if isinstance(side, tuple | list) else (side,)))
        optimizer = self._optimizer(model)
        scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None
        step, positions, batches = 0, {}, 0
        if checkpoint is not None:
            model.load_state_dict(checkpoint["state_dict"])
            optimizer.load_state_dict(checkpoint["optimizer"])
            if scaler is not None and checkpoint.get("scaler"):
                scaler.load_state_dict(checkpoint["scaler"])
            step = int(checkpoint["step"])
            positions, batches = self._restore_data(checkpoint["data"])
            torch.set_rng_state(checkpoint["rng"]["torch"])
            if self.info.is_main:
                log.info("resumed from %s at step %d", resume, step)
        ddp_model = model
        if self.info.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            on_gpu = self.info.device.startswith("cuda")
            ddp_model = DistributedDataParallel(model, device_ids=[self.info.local_rank] if on_gpu else None)
        stream = TrainStream(
            config,
            preprocess_train,
            tokenizer,
            self.info.rank,
            self.info.world_size,
            self.o.workers,
            start=positions,
            worker_offset=batches % self.workers,
        )
        loader = DataLoader(
            stream,
            batch_size=None,
            num_workers=self.o.workers,
            pin_memory=self.info.device.startswith("cuda"),
            prefetch_factor=4 if self.o.workers else None,
        )
        loss_fn = clip_loss_module(
            self.info.rank, self.info.world_size, self.o.local_loss, self.o.gather_with_grad
        )
        ctx = StepContext(
            ddp_model,
            model,
            optimizer,
            scaler,
            self._autocast,
            self.info.device,
            loss_fn,
            self.info.world_size,
            self.o.grad_clip_norm,
        )
        metrics = None
        if self.info.is_main:
            for name in ("metrics.jsonl", "metrics.csv"):
                self.output.appendable(name)
            metrics = MetricsLogger(self.output.staging, self.o.tensorboard)
        keys_file = None
        if self.o.log_sample_keys:
            keys_path = self.output.appendable("sample_keys", f"rank_{self.info.rank}.txt")
            self.keys_file = keys_file = open(keys_path, "a", encoding="utf-8")  # noqa: SIM115
        global_batch = self.o.batch_size * self.o.accum_freq * self.info.world_size
        progress = tqdm(
            total=self.o.steps,
            initial=step,
            desc="training",
            unit=" step",
            disable=not self.info.is_main,
            mininterval=2,
        )
        first_step = step
        train_seconds, loss, evals = 0.0, float("nan"), {}
        batches_iter = iter(loader)
        model.train()
        try:
            while step < self.o.steps:
                started = time.perf_counter()
                set_lr(optimizer, cosine_lr(step, self.o.lr, self.o.warmup_steps, self.o.steps))
                micro = [next(batches_iter) for _ in range(self.o.accum_freq)]
                for batch in micro:
                    positions[batch["worker"]] = Position.from_dict(batch["position"])
                    if keys_file is not None:
                        keys_file.write("".join(f"{key}\n" for key in batch["keys"]))
                batches += len(micro)
                loss = train_step(ctx, micro)
                step += 1
                train_seconds += time.perf_counter() - started
                rate = (step - first_step) * global_batch / max(train_seconds, 1e-9)
                progress.update(1)
                progress.set_postfix(loss=f"{loss:.3f}", samples_s=f"{rate:.1f}", refresh=False)
                last = step == self.o.steps
                if step % self.o.log_every == 0 or last:
                    self._log_train(metrics, step, loss, rate, positions, optimizer, model)
                if (self.o.save_every and step % self.o.save_every == 0) or last:
                    self._save(step, model, optimizer, scaler, positions, batches)
                if self.o.has_eval and self.o.eval_every and step % self.o.eval_every == 0 and not last:
                    evals = self._evaluate(step, model, preprocess_val, tokenizer, metrics, val_urls)
        finally:
            progress.close()
            if keys_file is not None:
                keys_file.close()
                self.keys_file = None
        if self.o.has_eval:
            evals = self._evaluate(step, model, preprocess_val, tokenizer, metrics, val_urls)
        return self._finish(
            step, first_step, model, loss, train_seconds, global_batch, positions, evals, metrics
        )

    def _corrupt_totals(self, positions: dict[int, Position]) -> tuple[int, int]:
        mine = (
            sum(p.counters.corrupt_samples for p in positions.values()),
            sum(p.counters.corrupt_shards for p in positions.values()),
        )
        every = all_gather_objects(self.info, mine)
        return sum(s for s, _ in every), sum(t for _, t in every)

    def _log_train(
        self,
        metrics: MetricsLogger | None,
        step: int,
        loss: float,
        rate: float,
        positions: dict[int, Position],
        optimizer: Any,
        model: Any,
    ) -> None:
        samples, shards = self._corrupt_totals(positions)
        if metrics is None:
            return
        self._log(
            metrics,
            step,
            {
                "train/loss": loss,
                "train/lr": optimizer.param_groups[0]["lr"],
                "train/logit_scale": float(model.logit_scale.exp().item()),
                "train/samples_per_s": rate,
                "train/corrupt_samples": samples,
                "train/corrupt_shards": shards,
            },
        )

    def _log(self, metrics: MetricsLogger, step: int, values: dict[str, float]) -> None:
        metrics.log(step, values)
        self.output.sync(force=False)  # off local disk: uploads now and then, and at checkpoints

    def _save(
        self, step: int, model: Any, optimizer: Any, scaler: Any, positions: dict[int, Position], batches: int
    ) -> None:
        import torch

        mine = {"batches": batches, "positions": {str(w): p.to_dict() for w, p in positions.items()}}
        ranks = all_gather_objects(self.info, mine)
        if self.keys_file is not None:
            self.keys_file.flush()
        if not self.info.is_main:
            self.output.sync()  # this rank's sample keys
            return
        state = {
            "format": FORMAT,
            "name": self.o.model,
            "step": step,
            "state_dict": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "data": {
                "world_size": self.info.world_size,
                "workers": self.workers,
                "batch_size": self.o.batch_size,
                "seed": self.o.seed,
                "resampled": self.o.resampled,
                "ranks": ranks,
            },
            "rng": {"torch": torch.get_rng_state()},
            "options": asdict(self.o),
        }
        if self.tokenizer is not None:
            state["tokenizer"] = self.tokenizer.record()
        self.output.sync()  # metrics up to this step before the checkpoint that vouches for them
        path = save_checkpoint(state, self.checkpoints)
        prune_checkpoints(self.checkpoints, self.o.keep_checkpoints)
        log.info("checkpoint %s", path)

    def _evaluate(
        self,
        step: int,
        model: Any,
        preprocess: Any,
        tokenizer: Any,
        metrics: MetricsLogger | None,
        val_urls: list[str],
    ) -> dict[str, float]:
        results: dict[str, float] = {}
        if self.info.is_main:
            if self.eval_sets is None:
                self.eval_sets = self._eval_sets(val_urls)
            results = evaluate(
                model,
                preprocess,
                tokenizer,
                self.eval_sets,
                self.info.device,
                self.o.eval_batch_size,
                self._autocast,
            )
            if metrics is not None:
                self._log(metrics, step, results)
            log.info("eval at step %d: %s", step, ", ".join(f"{k}={v:.3f}" for k, v in results.items()))
        barrier(self.info)
        return results

    def _eval_sets(self, val_urls: list[str]) -> list[EvalSet]:
        sets = []
        if self.o.eval_world:
            sets.extend(world_eval_sets(self.eval_world or self.o.eval_world, self.o.eval_world))
        if self.o.zeroshot_dir:
            templates = load_templates(self.o.zeroshot_templates)
            folder = self.zeroshot_dir or self.o.zeroshot_dir
            sets.append(folder_eval_set(folder, templates, self.o.zeroshot_dir))
        if val_urls:
            sets.append(shard_eval_set(val_urls, self.o.val_max_samples))
        return sets

    def _finish(
        self,
        step: int,
        first_step: int,
        model: Any,
        loss: float,
        train_seconds: float,
        global_batch: int,
        positions: dict[int, Position],
        evals: dict[str, float],
        metrics: MetricsLogger | None,
    ) -> dict[str, Any]:
        corrupt_samples, corrupt_shards = self._corrupt_totals(positions)
        digests = all_gather_objects(self.info, weights_digest(model))
        samples = (step - first_step) * global_batch
        summary = {
            "model": self.o.model,
            "tokenizer": self.tokenizer.name if self.tokenizer is not None else "clip",
            "steps": step,
            "steps_this_run": step - first_step,
            "samples_this_run": samples,
            "samples_per_s": samples / train_seconds if train_seconds else 0.0,
            "global_batch": global_batch,
            "world_size": self.info.world_size,
            "final_loss": loss,
            "corrupt_samples": corrupt_samples,
            "corrupt_shards": corrupt_shards,
            "eval": evals,
            "weights_sha256_per_rank": digests,
            "model_file": self.output.file("model.pt"),
        }
        if self.info.is_main:
            if len(set(digests)) != 1:
                log.error("weights differ between ranks: %s", digests)
            weights: dict[str, Any] = model.state_dict()
            if self.tokenizer is not None:  # open_clip's loader reads "state_dict" from such a dict
                weights = {"state_dict": weights, "tokenizer": self.tokenizer.record()}
            atomic_save(weights, self.output.file("model.pt"))
            self.output.write_bytes(json.dumps(summary, indent=2).encode("utf-8"), "summary.json")
            if metrics is not None:
                metrics.close()
        self.output.sync()
        barrier(self.info)
        return summary
