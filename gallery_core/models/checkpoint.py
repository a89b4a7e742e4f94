"""A trained model on disk: ``model.pt`` carries its config, tasks and weights, so it rebuilds itself.

A checkpoint is a plain dict saved with ``torch.save`` and loadable with ``torch.load(weights_only=True)``:
``format`` (``CHECKPOINT_FORMAT``), ``config`` (``BuildConfig.to_dict``), ``tasks``, ``backbone`` (name and
weight source), the split and the training history beside ``model`` (the state dict). ``build_model`` makes
the network a config describes, for training (pretrained weights) and for loading (weights from the file).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

from gallery_core.artifacts.store import atomic_path
from gallery_core.config import BuildConfig, ModelConfig
from gallery_core.data.tasks import TaskSpec
from gallery_core.errors import UsageError
from gallery_core.models.backbones import create_backbone
from gallery_core.models.device import pick_device
from gallery_core.models.encoder import GalleryEncoder, GalleryModel, MultiTaskHeads
from gallery_core.models.vae import VAEDecoder

CHECKPOINT_FORMAT = "gallery-core-checkpoint"


def build_model(config: ModelConfig, tasks: tuple[TaskSpec, ...], pretrained: bool = True,
                vae_image_size: int | None = None) -> GalleryModel:
    """``vae_image_size``: add the VAE objective's decoder (its weights then live in the checkpoint)."""
    backbone = create_backbone(config.backbone, config.trainable_stages, config.weights_path, pretrained,
                               config.freeze_batchnorm)
    encoder = GalleryEncoder(backbone, config.embed_dim)
    decoder = VAEDecoder(encoder.embed_dim, vae_image_size) if vae_image_size else None
    heads = MultiTaskHeads(tasks, encoder.embed_dim, config.head_hidden, config.head_projector)
    return GalleryModel(encoder, heads, decoder)


def vae_image_size(config: BuildConfig) -> int | None:
    """The VAE decoder's thumbnail size when the config trains one, else None (no decoder in the model)."""
    return config.train.vae_image_size if config.train.vae_weight > 0 else None


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write atomically: an interruption mid-write leaves the previous file, never half a checkpoint.

    The same payload always gives the same bytes, however it was put together (in one process, or partly
    loaded from an earlier checkpoint after a resume): see ``_canonical``. Saved through an open file, as
    torch.save names the archive inside after a path it is given, and the temporary path is random."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(_canonical(payload), f)


def _canonical(value: Any) -> Any:
    """``value`` rebuilt so that pickling it depends only on its contents: tensors row-major, containers
    copied, and every string interned (pickle writes a string once per object, so equal strings made in
    different places, e.g. read back from a checkpoint, would otherwise be written again)."""
    if isinstance(value, torch.Tensor):
        # Not .contiguous(): a channels-last tensor with a size-1 dimension counts as contiguous, yet its
        # strides, which torch.save records, differ from those of the same tensor made row-major (computing
        # the trunk cache turns the model's trunk channels-last).
        strides, stride = [], 1
        for size in reversed(value.shape):
            strides.insert(0, stride)
            stride *= max(size, 1)
        return value if value.stride() == tuple(strides) else torch.empty_like(
            value, memory_format=torch.contiguous_format).copy_(value)
    if isinstance(value, str):
        return sys.intern(value)
    if isinstance(value, dict):
        copy = type(value)((_canonical(k), _canonical(v)) for k, v in value.items())
        if hasattr(value, "_metadata"):  # a state dict's module versions, which load_state_dict reads
            copy._metadata = _canonical(value._metadata)
        return copy
    if type(value) in (list, tuple):
        return type(value)(_canonical(v) for v in value)
    return value


def load_checkpoint(path: str | Path, device: str | None = None) -> tuple[GalleryModel, dict[str, Any]]:
    """The trained model (eval mode) and its checkpoint dict (config, tasks, split, history)."""
    path = Path(path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise UsageError(f"{path}: not a gallery-core checkpoint")
    config = BuildConfig.from_dict(checkpoint["config"])
    tasks = tuple(TaskSpec.from_dict(t) for t in checkpoint["tasks"])
    # Every weight, the frozen trunk's included, comes from the checkpoint itself.
    model = build_model(config.model, tasks, pretrained=False, vae_image_size=vae_image_size(config))
    model.encoder.backbone.weight_source = checkpoint["backbone"]["weight_source"]
    model.load_state_dict(checkpoint["model"])
    return model.to(pick_device(device)).eval(), checkpoint
