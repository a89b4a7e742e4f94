"""What every section of the evaluation shares: the run, its catalogue, its trunk cache, scratch space,
and the ImageNet-transfer features (computed once, used by the hold-out and retrieval sections)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from gallery_core.artifacts.run import Run
from gallery_core.config import BuildConfig
from gallery_core.data.catalogue import Catalogue
from gallery_core.evaluation.models import imagenet_gallery_features, load_run_catalogue


@dataclass
class ImagenetFeatures:
    listings: np.ndarray  # (L, F) mean of each listing's photo features, rows of run.listings
    photos: np.ndarray  # (P, F) rows of run.photos
    seconds: float


@dataclass
class Context:
    run: Run
    work_dir: Path  # scratch for baseline checkpoints
    report_dir: Path  # where the report goes (and where results of separate jobs, e.g. the ablation, are read)
    device: str | None = None
    progress: bool = True
    catalogue_dir: str | Path | None = None
    notes: list[str] = field(default_factory=list)  # things the report should mention (skips, caveats)

    @property
    def cache_dir(self) -> Path:
        return self.run.paths.cache_dir

    @cached_property
    def checkpoint_info(self) -> dict:
        """The run checkpoint's bookkeeping (config, split, trunk cache key), without the weights."""
        checkpoint = torch.load(self.run.paths.checkpoint, map_location="cpu", weights_only=True)
        return {k: v for k, v in checkpoint.items() if k not in ("model", "weighting", "optimizer")}

    @property
    def cache_key(self) -> str:
        return self.checkpoint_info["trunk_cache_key"]

    @cached_property
    def catalogue(self) -> Catalogue:
        return load_run_catalogue(self.run, self.catalogue_dir)

    @cached_property
    def is_val(self) -> np.ndarray:
        return (self.run.listings["split"] == "val").to_numpy()

    def baseline_config(self, epochs: int, weighting: str | None = None) -> BuildConfig:
        """The run's config with another epoch budget and/or weighting: same architecture, same seed."""
        config = self.run.config
        # An evaluation model always fine-tunes as the run's would, however few listings a fraction leaves it.
        train = replace(config.train, max_epochs=epochs, weighting=weighting or config.train.weighting,
                        min_listings_to_finetune=0)
        return replace(config, train=train).validate()

    @cached_property
    def imagenet(self) -> ImagenetFeatures:
        started = time.perf_counter()
        listings, photos = imagenet_gallery_features(self.run, self.cache_dir, self.cache_key, self.device,
                                                     progress=self.progress)
        return ImagenetFeatures(listings, photos, time.perf_counter() - started)
