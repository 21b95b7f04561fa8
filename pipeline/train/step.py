"""One optimiser step: mixed precision, gradient accumulation, clipping, temperature clamp.

Accumulation follows open_clip's ``--accum-freq``: the features of all micro-batches are first
computed without gradient; then each micro-batch is recomputed with gradient, put in its slice of
the full feature set, and the loss over the *whole* accumulated batch is back-propagated. The
contrastive batch (the negatives) is thus ``batch_size x accum_freq x world_size``, and the summed
gradient equals that of one large batch, at the cost of one extra forward pass.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from pipeline.train.loss import clamp_logit_scale


@dataclass
class StepContext:
    """What a step needs besides the data."""

    model: Any  # DDP-wrapped when several processes
    bare_model: Any
    optimizer: Any
    scaler: Any  # torch.amp.GradScaler or None
    autocast: Callable[[], AbstractContextManager[Any]]
    device: str
    loss: Any  # pipeline.train.loss.clip_loss_module(...)
    world_size: int = 1
    grad_clip_norm: float = 0.0


def train_step(ctx: StepContext, micro_batches: list[dict[str, Any]]) -> float:
    """Run one optimiser step over ``micro_batches``; return the loss of the accumulated batch."""
    import torch

    pairs = [
        (b["images"].to(ctx.device, non_blocking=True), b["texts"].to(ctx.device, non_blocking=True))
        for b in micro_batches
    ]
    ctx.optimizer.zero_grad(set_to_none=True)
    if len(pairs) == 1:
        images, texts = pairs[0]
        with ctx.autocast():
            image_features, text_features, scale = ctx.model(images, texts)
            loss = ctx.loss(image_features, text_features, scale)
        _backward(ctx, loss)
        value = loss.detach()
    else:
        with torch.no_grad(), ctx.autocast():
            cached = [ctx.model(images, texts)[:2] for images, texts in pairs]
        value = torch.zeros((), device=ctx.device)
        for j, (images, texts) in enumerate(pairs):
            last = j == len(pairs) - 1
            # Reduce gradients across ranks once, after the last micro-batch.
            sync = ctx.model.no_sync() if ctx.world_size > 1 and not last else nullcontext()
            with sync:
                with ctx.autocast():
                    image_j, text_j, scale = ctx.model(images, texts)
                    all_image = _with_slice([f[0] for f in cached], j, image_j)
                    all_text = _with_slice([f[1] for f in cached], j, text_j)
                    loss = ctx.loss(all_image, all_text, scale)
                _backward(ctx, loss)
            value = loss.detach()
    if ctx.grad_clip_norm > 0:
        if ctx.scaler is not None:
            ctx.scaler.unscale_(ctx.optimizer)
        torch.nn.utils.clip_grad_norm_(ctx.bare_model.parameters(), ctx.grad_clip_norm)
    if ctx.scaler is not None:
        ctx.scaler.step(ctx.optimizer)
        ctx.scaler.update()
    else:
        ctx.optimizer.step()
    clamp_logit_scale(ctx.bare_model)
    return float(value.item())


def _with_slice(parts: list[Any], j: int, live: Any) -> Any:
    import torch

    return torch.cat(parts[:j] + [live] + parts[j + 1 :])


def _backward(ctx: StepContext, loss: Any) -> None:
    if ctx.scaler is not None:
        ctx.scaler.scale(loss).backward()
    else:
        loss.backward()
