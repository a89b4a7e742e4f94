"""Weight-space interpolation of a fine-tuned backbone with its pretrained weights (WiSE-FT).

Wortsman et al. 2022 ("Robust fine-tuning of zero-shot models"): the weights ``(1 - alpha) * pretrained +
alpha * fine-tuned`` keep most of what fine-tuning learned while keeping what the pretrained weights knew
about everything else; between the two ends, features often read tasks neither end was tuned for better
than both. Only the backbone's trainable top differs between the two (the trunk is frozen ImageNet weights
in every model), so only the top is mixed.

BatchNorm running statistics are buffers, mixed like the weights; but the statistics of a mixed network's
activations are not the mix of the two networks' statistics, so ``recalibrate_batchnorm`` recomputes them on
the training photos for any alpha strictly between 0 and 1. At alpha 0 and 1 the result is exactly one end,
statistics included.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
from torch import nn

from gallery_core.models.backbones import Backbone


def check_alpha(alpha: float) -> float:
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"interpolation alpha must be in [0, 1], got {alpha}")
    return float(alpha)


def interpolate_state(pretrained: dict[str, torch.Tensor], finetuned: dict[str, torch.Tensor],
                      alpha: float) -> dict[str, torch.Tensor]:
    """``(1 - alpha) * pretrained + alpha * finetuned`` for every floating tensor (weights and BatchNorm
    statistics); integer buffers (BatchNorm's batch counters) are taken from the fine-tuned side. Alpha 0
    and 1 return exact copies of one side."""
    alpha = check_alpha(alpha)
    if pretrained.keys() != finetuned.keys():
        raise ValueError("the two state dicts have different keys: not the same architecture")
    mixed = {}
    for name, ft in finetuned.items():
        pre = pretrained[name]
        if pre.shape != ft.shape:
            raise ValueError(f"{name}: shape {tuple(pre.shape)} != {tuple(ft.shape)}")
        if alpha == 0.0:
            mixed[name] = pre.clone()
        elif alpha == 1.0 or not ft.is_floating_point():
            mixed[name] = ft.clone()
        else:
            mixed[name] = torch.lerp(pre.to(ft.dtype), ft, alpha)
    return mixed


def interpolate_backbone(pretrained: Backbone, finetuned: Backbone, alpha: float) -> Backbone:
    """A copy of ``finetuned`` whose top stages hold the mix; the trunk (frozen, identical) is kept."""
    mixed = copy.deepcopy(finetuned)
    mixed.top.load_state_dict(interpolate_state(pretrained.top.state_dict(), finetuned.top.state_dict(), alpha))
    return mixed


def batchnorm_layers(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def recalibrate_batchnorm(top: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Recompute the running statistics of ``top``'s BatchNorm layers as the plain average over ``batches``
    (inputs of ``top``: trunk features (n, C, h, w)); the weights do not change. Returns how many inputs
    were seen; with none the statistics are left as they were."""
    layers = batchnorm_layers(top)
    if not layers:
        return 0
    was_training = top.training
    saved = [(m, m.momentum) for m in layers]
    seen = 0
    for batch in batches:
        if seen == 0:  # only once data is there: an empty pass leaves the statistics untouched
            top.eval()
            for m in layers:
                m.reset_running_stats()
                m.momentum = None  # cumulative moving average: every batch counts alike
                m.train()
        top(batch)
        seen += len(batch)
    for m, momentum in saved:
        m.momentum = momentum
    top.train(was_training)
    return seen
