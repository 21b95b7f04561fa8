"""The CLIP loss is symmetric InfoNCE (open_clip's ClipLoss); the temperature is clamped at 100."""

from __future__ import annotations

import math

import open_clip
import torch
import torch.nn.functional as F

from pipeline.score.model import register_configs
from pipeline.train.loss import INIT_LOGIT_SCALE, MAX_LOGIT_SCALE, clamp_logit_scale, clip_loss_module


def _infonce(image: torch.Tensor, text: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    logits = scale * image @ text.T
    labels = torch.arange(len(image))
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def test_loss_and_gradients_are_symmetric_infonce() -> None:
    torch.manual_seed(0)
    image = F.normalize(torch.randn(12, 16), dim=-1).requires_grad_()
    text = F.normalize(torch.randn(12, 16), dim=-1).requires_grad_()
    scale = torch.tensor(INIT_LOGIT_SCALE)
    loss = clip_loss_module()
    ours = loss(image, text, scale)
    assert torch.allclose(ours, _infonce(image, text, scale))
    (grad_ours,) = torch.autograd.grad(loss(image, text, scale), image)
    (grad_reference,) = torch.autograd.grad(_infonce(image, text, scale), image)
    assert torch.allclose(grad_ours, grad_reference)
    assert loss(image[:5], text[:5], scale).shape == ()  # labels follow the batch size (cached per size)


def test_matched_pairs_have_a_lower_loss_than_shuffled_ones() -> None:
    torch.manual_seed(1)
    features = F.normalize(torch.randn(16, 8), dim=-1)
    loss = clip_loss_module()
    matched = loss(features, features, torch.tensor(10.0))
    shuffled = loss(features, features[torch.randperm(16)], torch.tensor(10.0))
    assert matched < shuffled


def test_temperature_starts_at_1_over_0_07_and_is_clamped_at_100() -> None:
    register_configs()
    model = open_clip.create_model("corpusforge-tiny")
    assert math.isclose(model.logit_scale.exp().item(), INIT_LOGIT_SCALE, rel_tol=1e-5)
    with torch.no_grad():
        model.logit_scale.fill_(10.0)
    clamp_logit_scale(model)
    assert math.isclose(model.logit_scale.exp().item(), MAX_LOGIT_SCALE, rel_tol=1e-5)
