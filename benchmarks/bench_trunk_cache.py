"""Training epoch from the cached frozen-trunk output vs. from pixels (decode + full backbone each epoch).

The frozen trunk is deterministic, so its output can be computed once and reused by every epoch
(and by the embed step). This prints the one-off cost of the cache, one epoch each way, and what
it means for a full training run, on a slice of the demo catalogue.

    python benchmarks/bench_trunk_cache.py [--catalogue data/demo] [--listings 200] [--epochs-planned 10]
    python benchmarks/bench_trunk_cache.py --quick --catalogue CATALOGUE   # 20 listings at 32 px: a check
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from gallery_core.config import BuildConfig, ModelConfig, demo_catalogue_dir
from gallery_core.data.catalogue import load_catalogue
from gallery_core.data.photos import trunk_cache_key
from gallery_core.models.checkpoint import build_model
from gallery_core.training.data import label_tensors, prepare_data, regression_stats
from gallery_core.training.loop import run_epoch
from gallery_core.weighting import create_weighting


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalogue", type=Path, default=demo_catalogue_dir())
    parser.add_argument("--listings", type=int, default=200, help="listings in the slice (default 200)")
    parser.add_argument("--epochs-planned", type=int, default=10, help="epochs of a training run, for the total")
    parser.add_argument("--quick", action="store_true", help="20 listings at 32 px: a check that it runs")
    args = parser.parse_args()
    torch.manual_seed(0)
    config = BuildConfig(model=ModelConfig(image_size=32)).validate() if args.quick else BuildConfig().validate()
    if args.quick:
        args.listings = min(args.listings, 20)

    catalogue = load_catalogue(args.catalogue)
    keep = catalogue.listings["listing_id"].iloc[:args.listings]
    catalogue.listings = catalogue.listings[catalogue.listings["listing_id"].isin(keep)].reset_index(drop=True)
    catalogue.photos = catalogue.photos[catalogue.photos["listing_id"].isin(keep)].reset_index(drop=True)
    model = build_model(config.model, catalogue.tasks)
    device = torch.device("cpu")
    labels = label_tensors(catalogue)
    idx = np.arange(len(catalogue.listings))
    variances = {k: v for k, (_, v) in regression_stats(catalogue, labels, idx).items()}
    weighting = create_weighting("pseudo_uniform", catalogue.tasks, variances)

    def epoch(data) -> float:
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        started = time.perf_counter()
        run_epoch(model, weighting, data, idx, labels, config.train.batch_size, device, optimizer,
                  torch.Generator().manual_seed(0))
        return time.perf_counter() - started

    with tempfile.TemporaryDirectory() as tmp:
        key = trunk_cache_key(catalogue.fingerprint, model.encoder.backbone, config.model.image_size)
        started = time.perf_counter()
        cached = prepare_data(catalogue, model, config.model, Path(tmp), key, True, device, progress=False)
        cache_seconds = time.perf_counter() - started
        cached_epoch = epoch(cached)
    uncached = prepare_data(catalogue, model, config.model, Path("."), "", False, device, progress=False)
    uncached_epoch = epoch(uncached)

    n_photos = int(cached.photo_offsets[-1])
    e = args.epochs_planned
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch "
          f"{torch.__version__}; backbone {config.model.backbone} at {config.model.image_size} px, "
          f"{config.model.trainable_stages} trainable stages")
    print(f"slice: {len(idx)} listings, {n_photos} photos")
    print(f"one-off trunk cache:        {cache_seconds:7.1f} s  ({n_photos / cache_seconds:.0f} photos/s)")
    print(f"epoch from cached trunk:    {cached_epoch:7.1f} s  ({n_photos / cached_epoch:.0f} photos/s)")
    print(f"epoch from pixels:          {uncached_epoch:7.1f} s  ({n_photos / uncached_epoch:.0f} photos/s)")
    print(f"speed-up per epoch:         {uncached_epoch / cached_epoch:7.1f} x")
    total_cached = cache_seconds + e * cached_epoch
    print(f"{e} epochs: cached {total_cached:.1f} s vs pixels {e * uncached_epoch:.1f} s "
          f"({e * uncached_epoch / total_cached:.1f} x)")


if __name__ == "__main__":
    main()
