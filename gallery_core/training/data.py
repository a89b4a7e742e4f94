"""The data a training run (and the embed step) works on: galleries as photo rows, labels, the split."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from gallery_core.artifacts.npy_rows import NpyRows
from gallery_core.config import ModelConfig
from gallery_core.data.catalogue import Catalogue
from gallery_core.data.photos import (
    TRUNK_CHUNK_SIZE,
    cached_trunk_features,
    find_undecodable,
    load_photo,
    to_model_input,
)
from gallery_core.data.tasks import encode_labels, observed_mask
from gallery_core.engine.features import trunk_batch
from gallery_core.errors import UsageError
from gallery_core.models.backbones import BackboneEntry
from gallery_core.models.encoder import GalleryModel

if TYPE_CHECKING:
    from gallery_core.engine.execution import Execution

# Trunk caches up to this size are copied into memory (batches are then a tensor gather); larger ones stay
# on disk and each batch reads its rows from the file (``NpyRows``: plain reads, so the file's pages never
# count in the process's resident set). The numbers are the same either way: the same
# float16 values become the same float32 channels-last batch.
TRUNK_IN_MEMORY_MAX_BYTES = 2 * 1024**3


def trunk_tensor(features: np.ndarray | NpyRows) -> torch.Tensor:
    """Trunk features (P, C, h, w) from the cache as an in-memory, writable tensor in ``TRUNK_MEMORY_FORMAT``,
    copied at most once (they can be most of a large catalogue's memory)."""
    if isinstance(features, NpyRows) and features.ndim == 4:  # read into place a block at a time
        n, c, h, w = features.shape
        nhwc = np.empty((n, h, w, c), dtype=features.dtype)  # channels-last in memory is NHWC
        for start in range(0, n, features.GATHER_BLOCK_ROWS):
            nhwc[start:start + features.GATHER_BLOCK_ROWS] = \
                features[start:start + features.GATHER_BLOCK_ROWS].transpose(0, 2, 3, 1)
        return torch.from_numpy(nhwc).permute(0, 3, 1, 2)
    features = np.asarray(features)
    if features.ndim != 4:
        return torch.from_numpy(np.array(features))
    nhwc = features.transpose(0, 2, 3, 1)  # channels-last in memory is NHWC
    if not (nhwc.flags.c_contiguous and nhwc.flags.writeable):
        nhwc = nhwc.copy(order="C")
    return torch.from_numpy(nhwc).permute(0, 3, 1, 2)


@dataclass
class GalleryData:
    """Listings, their photos as cached trunk features or file paths, and encoded labels."""

    catalogue: Catalogue  # without undecodable photos
    photo_offsets: np.ndarray  # (n_listings + 1,): listing i's photos are rows offsets[i]:offsets[i+1]
    # (n_photos, C, h, w) float16: in memory, channels-last (small caches), or the cache file read per batch
    # (large ones; see TRUNK_IN_MEMORY_MAX_BYTES); None: photos are decoded per batch
    trunk_features: torch.Tensor | np.ndarray | NpyRows | None
    image_size: int
    backbone_entry: BackboneEntry | None = None  # its mean/std normalise decoded pixels (None: ImageNet's)

    @property
    def n_listings(self) -> int:
        return len(self.photo_offsets) - 1

    def photo_rows(self, listing_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Photo rows of these listings, in order, and which of them each belongs to: ((P,), (P,))."""
        starts, ends = self.photo_offsets[listing_idx], self.photo_offsets[listing_idx + 1]
        rows = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends, strict=True)])
        return rows, np.repeat(np.arange(len(listing_idx)), ends - starts)

    def batch(self, listing_idx: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """Photos of these listings as one flat batch: (inputs (P, ...), gallery_ids (P,), from_trunk)."""
        rows, owner = self.photo_rows(listing_idx)
        gallery_ids = torch.from_numpy(owner).to(device)
        if self.trunk_features is not None:
            return trunk_batch(self.trunk_features, rows, device), gallery_ids, True
        paths = self.catalogue.photos["path"].to_numpy()[rows]
        pixels = np.stack([load_photo(p, self.image_size) for p in paths])
        return to_model_input(pixels, self.backbone_entry).to(device), gallery_ids, False


def prepare_data(catalogue: Catalogue, model: GalleryModel, config: ModelConfig, cache_dir: Path,
                 cache_key: str, use_cache: bool, device: torch.device, progress: bool = True,
                 in_memory: bool | None = None, execution: Execution | None = None) -> GalleryData:
    """Compute (or load) the trunk features, drop undecodable photos, and index galleries.

    ``in_memory``: copy the trunk features into memory (True) or read the cache file per batch (False);
    None: by size, ``TRUNK_IN_MEMORY_MAX_BYTES``. ``execution``: how a missing trunk cache is computed (in this
    process by default, or by the Ray engine, with the same features)."""
    trunk_features = None
    if use_cache:
        engine = None
        if execution is not None and execution.engine == "ray":
            from gallery_core.engine.ray_engine import ray_trunk_features

            options = execution.ray_options()

            def engine(paths: list[str], out_npy: Path) -> dict[int, str]:
                return ray_trunk_features(config.backbone, config.trainable_stages, config.weights_path, paths,
                                          config.image_size, out_npy, options, progress)
        features, bad = cached_trunk_features(cache_dir, cache_key, model.encoder.backbone,
                                              catalogue.photos["path"].tolist(), config.image_size, device, progress,
                                              chunk_size=execution.chunk_size if execution else TRUNK_CHUNK_SIZE,
                                              engine=engine, runtime=execution.cpu_runtime if execution else None,
                                              compile_model=execution.compile_model if execution else False)
        catalogue = catalogue.without_photos(bad)
        if in_memory is None:
            in_memory = features.nbytes <= TRUNK_IN_MEMORY_MAX_BYTES
        trunk_features = trunk_tensor(features) if in_memory else features
    else:
        # Photos are decoded every epoch: find the undecodable ones once, up front, not mid-epoch.
        catalogue = catalogue.without_photos(find_undecodable(catalogue.photos["path"].tolist(), config.image_size))
    sizes = catalogue.gallery_sizes()
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return GalleryData(catalogue, offsets, trunk_features, config.image_size, model.encoder.backbone.entry)


def split_listings(listing_ids: list[str], val_fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of validation listings: a seeded random split by listing."""
    rng = np.random.default_rng(seed)
    n_val = max(1, round(val_fraction * len(listing_ids)))
    is_val = np.zeros(len(listing_ids), dtype=bool)
    is_val[rng.permutation(len(listing_ids))[:n_val]] = True
    return is_val


def label_tensors(catalogue: Catalogue) -> dict[str, torch.Tensor]:
    """Each task's encoded labels, one row per listing (missing labels as the task's missing code)."""
    return {t.name: torch.from_numpy(encode_labels(t, catalogue.listings[t.column])) for t in catalogue.tasks}


def regression_stats(catalogue: Catalogue, labels: dict[str, torch.Tensor], train_idx: np.ndarray,
                     ) -> dict[str, tuple[float, float]]:
    """(mean, variance) of each regression task's observed training labels."""
    stats = {}
    for t in catalogue.tasks:
        if t.kind == "regression":
            y = labels[t.name].numpy()[train_idx]
            y = y[observed_mask(t, y)]
            if len(y) < 2:
                raise UsageError(f"task {t.name!r}: fewer than 2 training labels; cannot train it")
            stats[t.name] = (float(y.mean()), float(y.var()))
    return stats
