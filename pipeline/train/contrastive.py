"""A small in-memory contrastive trainer for open_clip models.

Enough to train the scorer of the synthetic world (the score job's quality check, the demo):
symmetric InfoNCE loss with the model's learnable temperature (clamped at 100), AdamW with
linear warm-up and cosine decay. Checkpoints are plain state dicts, loadable with
``weights_only=True`` and by ``--pretrained PATH``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image
from tqdm import tqdm

from pipeline.score.model import register_configs
from pipeline.train.loss import clamp_logit_scale, clip_loss_module
from pipeline.train.schedule import cosine_lr, set_lr

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainOptions:
    model: str = "corpusforge-tiny"
    steps: int = 600
    batch_size: int = 128
    learning_rate: float = 2e-3
    weight_decay: float = 0.1
    warmup_steps: int = 50
    seed: int = 0


def train_clip(images: list[Image.Image], captions: list[str], options: TrainOptions) -> Any:
    """Train ``options.model`` from scratch on (image, caption) pairs; return the model (eval mode)."""
    import open_clip
    import torch

    if len(images) != len(captions) or len(images) < 2:
        raise ValueError("need at least two (image, caption) pairs of equal count")
    register_configs()
    torch.manual_seed(options.seed)
    model, _, preprocess = open_clip.create_model_and_transforms(options.model)
    tokenizer = open_clip.get_tokenizer(options.model)
    pixels = torch.stack([preprocess(image.convert("RGB")) for image in images])
    tokens = tokenizer(captions)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=options.learning_rate, weight_decay=options.weight_decay
    )
    generator = torch.Generator().manual_seed(options.seed)
    batch = min(options.batch_size, len(images))
    loss_of = clip_loss_module()
    model.train()
    progress = tqdm(range(options.steps), desc="training CLIP", unit=" step", mininterval=5)
    for step in progress:
        set_lr(optimizer, cosine_lr(step, options.learning_rate, options.warmup_steps, options.steps))
        index = torch.randperm(len(images), generator=generator)[:batch]
        image_features = model.encode_image(pixels[index], normalize=True)
        text_features = model.encode_text(tokens[index], normalize=True)
        loss = loss_of(image_features, text_features, model.logit_scale.exp())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        clamp_logit_scale(model)
        if step % 50 == 0:
            progress.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    model.eval()
    log.info("trained %s for %d steps, final loss %.3f", options.model, options.steps, loss.item())
    return model


def save_checkpoint(model: Any, path: str | Path) -> Path:
    """Write the model's state dict atomically (temporary file, then rename)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".tmp")
    torch.save(model.state_dict(), temp)
    temp.replace(path)
    return path
