"""The CLIP contrastive loss (open_clip's own ``ClipLoss``) and the temperature clamp.

Several processes: by default every rank gathers all ranks' features without gradient and puts
its own features (with gradient) back in its slice, then computes the loss over the *global*
batch (``local_loss=False, gather_with_grad=False``). Each rank thus back-propagates the global
loss through its own samples only; DDP's gradient average makes that ``1/world_size`` times the
exact gradient of the global-batch loss, the same on every rank. ``--local-loss`` and
``--gather-with-grad`` select open_clip's other two modes, with their meanings there.
"""

from __future__ import annotations

import math
from typing import Any

MAX_LOGIT_SCALE = 100.0
INIT_LOGIT_SCALE = 1 / 0.07


def clip_loss_module(
    rank: int = 0, world_size: int = 1, local_loss: bool = False, gather_with_grad: bool = False
) -> Any:
    """``loss(image_features, text_features, logit_scale)``: symmetric InfoNCE over the batch.

    Features are L2-normalised; ``logit_scale`` is the inverse temperature ``exp(model.logit_scale)``,
    as open_clip's forward returns it.
    """
    from open_clip.loss import ClipLoss

    return ClipLoss(
        local_loss=local_loss,
        gather_with_grad=gather_with_grad,
        cache_labels=True,
        rank=rank,
        world_size=world_size,
    )


def clamp_logit_scale(model: Any) -> None:
    """Keep ``exp(logit_scale)`` in [1, 100] (CLIP's clamp), in place, after an optimiser step."""
    import torch

    with torch.no_grad():
        model.logit_scale.clamp_(0, math.log(MAX_LOGIT_SCALE))
