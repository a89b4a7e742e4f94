"""How much of the pretrained backbone training may change: the small-catalogue guard, Adam's parameter
groups (backbone learning-rate multiplier), LP-FT's probe phase and the L2-SP pull toward the pretrained
weights."""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from gallery_core.config import MIN_VALIDATION_LISTINGS, TrainConfig
from gallery_core.errors import UsageError
from gallery_core.models.encoder import GalleryModel

logger = logging.getLogger(__name__)


class L2SP(nn.Module):
    """L2-SP (Li, Grandvalet & Davoine, 2018): ``weight / 2 * sum ||w - w0||^2`` over the fine-tuned
    backbone weights, w0 their pretrained values (taken when this is made, before any training)."""

    def __init__(self, backbone_top: nn.Module, weight: float):
        super().__init__()
        self.weight = weight
        self.params = [p for p in backbone_top.parameters() if p.requires_grad]
        self.anchors = [p.detach().clone() for p in self.params]

    def forward(self) -> torch.Tensor:
        if not self.params:
            return torch.zeros(())
        return 0.5 * self.weight * sum(((p - a) ** 2).sum() for p, a in zip(self.params, self.anchors, strict=True))


def small_catalogue_check(model: GalleryModel, n_train: int, n_val: int, config: TrainConfig) -> bool:
    """Say plainly when a catalogue is too small to learn from; below ``min_listings_to_finetune`` training
    listings freeze the backbone's top (weights and statistics). Returns whether the backbone fine-tunes.

    Raises ``UsageError`` when there is nothing to train on: fewer than 2 training listings, or no
    validation listing to choose the best epoch with."""
    if n_train < 2 or n_val < 1:
        raise UsageError(f"the catalogue is too small to train on: its {n_train + n_val} listings with usable "
                         f"photos split into {n_train} training and {n_val} validation listings, and training needs "
                         "at least 2 to learn from and 1 to validate on; add listings (or photos to the listings "
                         "left without any)")
    backbone = model.encoder.backbone
    if n_val < MIN_VALIDATION_LISTINGS:
        logger.warning(f"the validation split has only {n_val} listings: early stopping and the validation "
            "metrics rest on a handful of galleries and mean little")
    if n_train >= config.min_listings_to_finetune or len(backbone.top) == 0:
        return len(backbone.top) > 0
    logger.warning(f"only {n_train} training listings, fewer than min_listings_to_finetune="
        f"{config.min_listings_to_finetune}: too few to fine-tune the backbone without losing what it knows. "
        f"Its {len(backbone.top)} top stages keep their pretrained weights and statistics and only the heads train, "
        "so the embedding is the backbone's own features (as good for retrieval as they are). Pass "
        "--min-listings-to-finetune 0 to fine-tune anyway.")
    backbone.top.requires_grad_(False)
    backbone.freeze_batchnorm = True
    return False


def param_groups(model: GalleryModel, weighting: nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
    """Adam's parameter groups: the fine-tuned backbone stages at ``lr * backbone_lr_mult``, the rest
    (projection, heads, decoder, learned loss weights) at ``lr``. Frozen weights are in neither."""
    backbone = {id(p) for p in model.encoder.backbone.parameters()}
    top = [p for p in model.encoder.backbone.parameters() if p.requires_grad]
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in backbone] + list(weighting.parameters())
    groups = [{"params": rest, "lr": config.lr}]
    if top and config.backbone_lr_mult > 0:
        groups.append({"params": top, "lr": config.lr * config.backbone_lr_mult})
    elif top:  # a multiplier of 0 freezes the top: it then trains nothing, and has no optimizer state
        for p in top:
            p.requires_grad_(False)
    return groups


def set_probe_phase(model: GalleryModel, probing: bool, freeze_batchnorm: bool) -> None:
    """LP-FT (Kumar et al. 2022): while ``probing`` the backbone top is frozen, weights (no gradients, so Adam
    leaves them) and BatchNorm statistics, and only the heads learn on the pretrained features; afterwards it
    fine-tunes as configured (``freeze_batchnorm``: the model config's own choice). Call it before each
    epoch, so a resumed run is in the phase its epoch says."""
    backbone = model.encoder.backbone
    backbone.top.requires_grad_(not probing)
    backbone.freeze_batchnorm = probing or freeze_batchnorm
