"""A trained model on disk: ``model.pt`` carries its config, tasks and weights, so it rebuilds itself.

A checkpoint is a plain dict saved with ``torch.save`` and loadable with ``torch.load(weights_only=True)``:
``format`` (``CHECKPOINT_FORMAT``), ``config`` (``BuildConfig.to_dict``), ``tasks``, ``backbone`` (name and
weight source), the split and the training history beside ``model`` (the state dict). ``build_model`` makes
the network a config describes, for training (pretrained weights) and for loading (weights from the file).
"""

from __future__ import annotations

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
    return GalleryModel(encoder, MultiTaskHeads(tasks, encoder.embed_dim, config.head_hidden), decoder)


def vae_image_size(config: BuildConfig) -> int | None:
    """The VAE decoder's thumbnail size when the config trains one, else None (no decoder in the model)."""
    return config.train.vae_image_size if config.train.vae_weight > 0 else None


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write atomically: an interruption mid-write leaves the previous file, never half a checkpoint."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


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
