"""Embed every photo and listing with the trained encoder.

Photo embedding = the encoder's output for one photo (P, D); listing embedding = the L2-normalised
mean of its photos' embeddings (L, D), what retrieval, the index and the map use. The embedding for
new tasks (``new_task_embeddings.npy``, what the audit's probes and a user's own probes should read)
keeps the pretrained backbone's features beside the learned ones by default
(``EmbedConfig.new_task_features``; docs/representation_study.md says why). The frozen trunk's cached
output is reused when present.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from gallery_core.artifacts.store import RunPaths, write_npy, write_parquet
from gallery_core.config import NEW_TASK_FEATURES, BuildConfig, EmbedConfig, ModelConfig
from gallery_core.data.catalogue import Catalogue
from gallery_core.data.photos import load_photo, to_model_input
from gallery_core.models.backbones import create_backbone
from gallery_core.models.checkpoint import load_checkpoint
from gallery_core.models.device import pick_device
from gallery_core.models.encoder import GalleryEncoder
from gallery_core.training.data import prepare_data, trunk_input
from gallery_core.vectors import group_mean, l2_normalise


def mean_per_listing(photo_embeddings: np.ndarray, listing_index: np.ndarray, n_listings: int) -> np.ndarray:
    """Mean of each listing's photo embeddings: (P, D) + listing index (P,) -> (L, D), not normalised.
    This is the gallery embedding the task heads were trained on."""
    pooled = group_mean(torch.from_numpy(np.array(photo_embeddings, dtype=np.float32)),
                        torch.from_numpy(np.array(listing_index, dtype=np.int64)), n_listings)
    return pooled.numpy()


@torch.no_grad()
def pretrained_photo_features(config: ModelConfig, trunk_features: torch.Tensor | np.ndarray,
                              device: torch.device | None = None, batch_size: int = 1024,
                              progress: bool = False) -> np.ndarray:
    """The pretrained backbone's own pooled features (P, feature_dim) from frozen-trunk features (P, C, h, w).

    The trunk is frozen ImageNet weights in every model, so its cached output serves here: only the top
    stages run, with their pretrained weights and statistics.
    """
    device = device or torch.device("cpu")
    backbone = create_backbone(config.backbone, config.trainable_stages, config.weights_path,
                               pretrained=True).to(device).eval()
    chunks = []
    for start in tqdm(range(0, len(trunk_features), batch_size), desc="pretrained features", leave=False,
                      disable=not progress):
        x = torch.as_tensor(np.asarray(trunk_features[start:start + batch_size], dtype=np.float32)).to(device)
        chunks.append(backbone.forward_top(trunk_input(x)).float().cpu().numpy())
    return np.concatenate(chunks) if chunks else np.zeros((0, backbone.feature_dim), np.float32)


def new_task_embeddings(learned: np.ndarray, pretrained: np.ndarray | None, features: str) -> np.ndarray:
    """The embedding for tasks a run never trained on, from listing means (not normalised):
    ``learned`` (L, D) and ``pretrained`` (L, F), as ``features`` names (see NEW_TASK_FEATURES).

    Each part is L2-normalised and the parts are concatenated and scaled by 1/sqrt(parts), so every
    row has unit norm and neither part dominates a cosine by its scale.
    """
    if features not in NEW_TASK_FEATURES:
        raise ValueError(f"unknown new_task_features {features!r}; choose from {NEW_TASK_FEATURES}")
    parts = {"learned": [learned], "pretrained": [pretrained], "pretrained+learned": [pretrained, learned]}[features]
    if any(p is None for p in parts):
        raise ValueError(f"new_task_features {features!r} needs the pretrained features")
    blocks = [l2_normalise(np.asarray(p, dtype=np.float32)) for p in parts]
    return (np.concatenate(blocks, axis=1) / np.sqrt(len(blocks))).astype(np.float32)


@torch.no_grad()
def embed_photo_files(encoder: GalleryEncoder, photos: list[str | Path | bytes], image_size: int,
                      device: torch.device | None = None) -> np.ndarray:
    """Embed photos given as files or bytes (e.g. uploads) -> (P, D). Raises PhotoError on a bad one."""
    device = device or next(encoder.parameters()).device
    pixels = np.stack([load_photo(p, image_size) for p in photos])
    encoder.eval()
    return encoder.embed_photos(to_model_input(pixels, encoder.backbone).to(device)).float().cpu().numpy()


@torch.no_grad()
def encode_trunk_features(encoder: GalleryEncoder, trunk_features: torch.Tensor, device: torch.device,
                          batch_size: int = 1024, progress: bool = False) -> np.ndarray:
    """Photo embeddings (P, D) float32 from cached frozen-trunk features (P, C, h, w)."""
    encoder.eval()
    chunks = []
    for start in tqdm(range(0, len(trunk_features), batch_size), desc="embed photos", disable=not progress):
        features = trunk_input(trunk_features[start:start + batch_size].to(device).float())
        chunks.append(encoder.embed_photos(features, from_trunk=True).float().cpu().numpy())
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros((0, encoder.embed_dim), np.float32)


@dataclass
class EmbedResult:
    photo_table: pd.DataFrame
    photo_embeddings: np.ndarray
    listing_table: pd.DataFrame
    listing_embeddings: np.ndarray
    new_task_embeddings: np.ndarray  # (L, D'): see EmbedConfig.new_task_features


@torch.no_grad()
def embed(catalogue: Catalogue, run_dir: str | Path, device: str | None = None, progress: bool = True,
          batch_size: int = 1024, embed_config: EmbedConfig | None = None) -> EmbedResult:
    """``embed_config``: default the one the model was trained with (the build passes its current one)."""
    paths = RunPaths(Path(run_dir))
    dev = pick_device(device)
    model, checkpoint = load_checkpoint(paths.checkpoint, device=str(dev))
    config = BuildConfig.from_dict(checkpoint["config"])
    if embed_config is not None:
        config = replace(config, embed=embed_config)
    data = prepare_data(catalogue, model, config.model, paths.cache_dir, checkpoint["trunk_cache_key"],
                        use_cache=True, device=dev, progress=progress)
    catalogue = data.catalogue
    photo_embeddings = encode_trunk_features(model.encoder, data.trunk_features, dev, batch_size, progress)

    sizes = np.diff(data.photo_offsets)
    listing_index = np.repeat(np.arange(len(sizes)), sizes)
    learned = mean_per_listing(photo_embeddings, listing_index, len(sizes))
    listing_embeddings = l2_normalise(learned)
    pretrained = None
    if config.embed.new_task_features != "learned":
        photo_pretrained = pretrained_photo_features(config.model, data.trunk_features, dev, batch_size, progress)
        pretrained = mean_per_listing(photo_pretrained, listing_index, len(sizes))
    transfer = new_task_embeddings(learned, pretrained, config.embed.new_task_features)

    photo_table = catalogue.photos[["listing_id", "path"]].reset_index(drop=True)
    photo_table.insert(0, "photo_index", np.arange(len(photo_table)))
    photo_table["listing_index"] = listing_index
    val_ids = set(checkpoint["val_listing_ids"])
    listing_table = catalogue.listings.copy()
    listing_table["split"] = np.where(listing_table["listing_id"].isin(val_ids), "val", "train")
    listing_table["n_photos"] = sizes
    listing_table["first_photo"] = data.photo_offsets[:-1]

    write_parquet(paths.photo_table, photo_table)
    write_npy(paths.photo_embeddings, photo_embeddings)
    write_parquet(paths.listing_table, listing_table)
    write_npy(paths.listing_embeddings, listing_embeddings)
    write_npy(paths.new_task_embeddings, transfer)
    return EmbedResult(photo_table, photo_embeddings, listing_table, listing_embeddings, transfer)
