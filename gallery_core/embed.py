"""Embed every photo and listing with the trained encoder.

Photo embedding = projection of the backbone features (P, D); listing embedding = the L2-normalised
mean of its photos' embeddings (L, D). The frozen trunk's cached output is reused when present.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from gallery_core.artifacts import RunPaths, write_npy, write_parquet
from gallery_core.catalogue import Catalogue
from gallery_core.config import BuildConfig
from gallery_core.index import l2_normalise
from gallery_core.model import GalleryEncoder, segment_mean
from gallery_core.photos import load_photo, to_model_input
from gallery_core.train import load_checkpoint, pick_device, prepare_data


def mean_per_listing(photo_embeddings: np.ndarray, listing_index: np.ndarray, n_listings: int) -> np.ndarray:
    """Mean of each listing's photo embeddings: (P, D) + listing index (P,) -> (L, D), not normalised.
    This is the gallery embedding the task heads were trained on."""
    pooled = segment_mean(torch.from_numpy(np.array(photo_embeddings, dtype=np.float32)),
                          torch.from_numpy(np.array(listing_index, dtype=np.int64)), n_listings)
    return pooled.numpy()


def listing_embeddings_from_photos(photo_embeddings: np.ndarray, listing_index: np.ndarray,
                                   n_listings: int) -> np.ndarray:
    """L2-normalised mean of each listing's photo embeddings: (P, D) + (P,) ids -> (L, D)."""
    return l2_normalise(mean_per_listing(photo_embeddings, listing_index, n_listings))


@torch.no_grad()
def embed_photo_files(encoder: GalleryEncoder, photos: list[str | Path | bytes], image_size: int,
                      device: torch.device | None = None) -> np.ndarray:
    """Embed photos given as files or bytes (e.g. uploads) -> (P, D). Raises PhotoError on a bad one."""
    device = device or next(encoder.parameters()).device
    pixels = np.stack([load_photo(p, image_size) for p in photos])
    encoder.eval()
    return encoder.embed_photos(to_model_input(pixels).to(device)).float().cpu().numpy()


@dataclass
class EmbedResult:
    photo_table: pd.DataFrame
    photo_embeddings: np.ndarray
    listing_table: pd.DataFrame
    listing_embeddings: np.ndarray


@torch.no_grad()
def embed(catalogue: Catalogue, run_dir: str | Path, device: str | None = None, progress: bool = True,
          batch_size: int = 1024) -> EmbedResult:
    paths = RunPaths(Path(run_dir))
    dev = pick_device(device)
    model, checkpoint = load_checkpoint(paths.checkpoint, device=str(dev))
    config = BuildConfig.from_dict(checkpoint["config"])
    data = prepare_data(catalogue, model, config.model, paths.cache_dir, checkpoint["trunk_cache_key"],
                        use_cache=True, device=dev, progress=progress)
    catalogue = data.catalogue
    n_photos = int(data.photo_offsets[-1])
    chunks = []
    for start in tqdm(range(0, n_photos, batch_size), desc="embed photos", disable=not progress):
        features = data.trunk_features[start:start + batch_size].to(dev).float()
        chunks.append(model.encoder.embed_photos(features, from_trunk=True).float().cpu().numpy())
    photo_embeddings = np.concatenate(chunks).astype(np.float32)

    sizes = np.diff(data.photo_offsets)
    listing_index = np.repeat(np.arange(len(sizes)), sizes)
    listing_embeddings = listing_embeddings_from_photos(photo_embeddings, listing_index, len(sizes))

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
    return EmbedResult(photo_table, photo_embeddings, listing_table, listing_embeddings)
