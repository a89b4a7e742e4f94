"""The backbone registry: what an entry is, and the entries by name. The family modules import ``register``
from here and ``gallery_core.models.backbones`` imports the families, so the package has no import cycle."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

# The ImageNet statistics torchvision and timm normalise with; both registered families use them.
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
    mean: tuple[float, float, float]  # per-channel RGB mean of [0, 1] pixels the weights expect
    std: tuple[float, float, float]  # and standard deviation


_REGISTRY: dict[str, BackboneEntry] = {}


def register(entry: BackboneEntry) -> BackboneEntry:
    """Add ``entry`` to the registry; a second entry under one name is refused (it would silently
    replace the first)."""
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


def weights_file_source(path: Path) -> str:
    """How a run records where its weights came from: the file and the start of its sha256."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return f"{path} (sha256 {digest})"
