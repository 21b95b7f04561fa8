"""The CLIP contrastive loss and the temperature clamp, shared by both trainers.

Several processes: every rank gathers all ranks' features without gradient and puts its own
features (with gradient) back in its slice, then computes the loss over the *global* batch
(open_clip's ``ClipLoss(local_loss=False, gather_with_grad=False)``). Each rank thus back-propagates
the global loss through its own samples only; DDP's gradient average makes that ``1/world_size``
times the exact gradient of the global-batch loss, the same on every rank.
"""

from __future__ import annotations

import math
from typing import Any

MAX_LOGIT_SCALE = 100.0
INIT_LOGIT_SCALE = 1 / 0.07


def gather_features(image: Any, text: Any, rank: int, world_size: int) -> tuple[Any, Any]:
    """All ranks' features concatenated in rank order; only the local slice carries gradient."""
    if world_size == 1:
        return image, text
    import torch
    import torch.distributed as dist

    images = [torch.zeros_like(image) for _ in range(world_size)]
    texts = [torch.zeros_like(text) for _ in range(world_size)]
    dist.all_gather(images, image.detach().contiguous())
    dist.all_gather(texts, text.detach().contiguous())
    images[rank] = image
    texts[rank] = text
    return torch.cat(images), torch.cat(texts)


def clip_loss(image: Any, text: Any, scale: Any, rank: int = 0, world_size: int = 1) -> Any:
    """Symmetric InfoNCE over the global batch; ``image``/``text`` are L2-normalised local features.

    ``scale`` is the inverse temperature ``exp(model.logit_scale)``, as open_clip's forward returns it.
    """
    import torch
    import torch.nn.functional as F

    all_image, all_text = gather_features(image, text, rank, world_size)
    logits = scale * all_image @ all_text.T
    labels = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def clamp_logit_scale(model: Any) -> None:
    """Keep ``exp(logit_scale)`` in [1, 100] (CLIP's clamp), in place, after an optimiser step."""
    import torch

    with torch.no_grad():
        model.logit_scale.clamp_(0, math.log(MAX_LOGIT_SCALE))
