"""VGG16, the paper's backbone: torchvision's architecture, its ImageNet weights file supplied by the user."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from gallery_core.models.backbones.registry import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    BackboneEntry,
    BackboneWeightsError,
    register,
    weights_file_source,
)

VGG16_WEIGHTS_FILE = "vgg16-397923af.pth"


def _build() -> nn.Module:
    from torchvision.models import vgg16  # only where a model is built

    return vgg16(weights=None)


def _load(model: nn.Module, weights_path: str | None) -> str:
    candidates = [Path(weights_path)] if weights_path else [
        Path(torch.hub.get_dir()) / "checkpoints" / VGG16_WEIGHTS_FILE,
    ]
    for path in candidates:
        if path.is_file():
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            return weights_file_source(path)
    raise BackboneWeightsError(
        f"vgg16 needs torchvision's ImageNet weights file ({VGG16_WEIGHTS_FILE}); looked in "
        f"{[str(p) for p in candidates]}. Nothing is downloaded at run time: copy the file there or pass "
        "--weights-path. Without it, use the default backbone efficientnet_lite0.")


def _stages(model: nn.Module) -> list[nn.Module]:
    # Five conv blocks, each ending in a max-pool; the paper trains the last one.
    stages, current = [], []
    for layer in model.features:
        current.append(layer)
        if isinstance(layer, nn.MaxPool2d):
            stages.append(nn.Sequential(*current))
            current = []
    return stages


register(BackboneEntry(
    name="vgg16",
    build=_build,
    load_weights=_load,
    stages=_stages,
    feature_dim=512,
    default_trainable_stages=1,
    native_size=224,
    mean=IMAGENET_MEAN,  # torchvision's ImageNet transforms
    std=IMAGENET_STD,
))
