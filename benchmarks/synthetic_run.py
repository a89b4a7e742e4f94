"""Synthetic runs for the app benchmarks and the large-map browser test: a built run's listings repeated with
new ids up to any size, with a valid manifest.

The listings are the source's, repeated with new ids; photos point at the source's photo files; photo
embeddings are jittered, listing embeddings their normalised means; UMAP coordinates jittered; predictions
copied; the source's checkpoint reused. ``gallery_core.artifacts.store.record_step`` gives it a manifest, so
the app opens it like any run. It is made once and reused while the source run is unchanged.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from gallery_core.artifacts.run import Run
from gallery_core.artifacts.store import (
    STEP_FILES,
    STEPS,
    RunPaths,
    atomic_path,
    hash_key,
    record_step,
    write_parquet,
)
from gallery_core.config import BuildConfig
from gallery_core.search.index import build_index, save_index
from gallery_core.vectors import l2_normalise

SYNTHETIC_INDEX_TREES = 10
CHUNK_ROWS = 100_000


def _source_signature(source: Run) -> str:
    return hash_key({name: record["checksum"] for name, record in source.manifest["files"].items()})


def make_synthetic_run(source_dir: Path, out: Path, n_listings: int, seed: int = 0,
                       max_photos: int | None = None, max_dim: int | None = None) -> Path:
    """A run of ``n_listings`` listings made from a built run (see the module docstring); reused if up to date.
    ``max_photos``: keep at most this many photos per listing; ``max_dim``: keep the embeddings' first
    ``max_dim`` dimensions. The map runs keep one photo and 16 dimensions (the Map page reads no embedding;
    a 1M run with the demo's 1280-d embeddings would be 5 GB per embedding file and a slow index)."""
    source = Run(source_dir, verify=False)
    marker = {"source": str(source_dir.resolve()), "source_signature": _source_signature(source),
              "n_listings": n_listings, "seed": seed, "max_photos": max_photos, "max_dim": max_dim}
    existing = out / "manifest.json"
    if existing.is_file() and json.loads(existing.read_text()).get("synthetic") == marker:
        return out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    paths, rng = RunPaths(out), np.random.default_rng(seed)
    started = time.perf_counter()

    # listings: the source's, repeated with new ids; photos: each copy points at the source's photo files
    src_rows = np.arange(n_listings) % len(source.listings)
    listings = source.listings.iloc[src_rows].reset_index(drop=True)
    listings["listing_id"] = [f"S{i + 1:07d}" for i in range(n_listings)]
    sizes = listings["n_photos"].to_numpy(np.int64)
    if max_photos is not None:
        sizes = np.minimum(sizes, max_photos)
        listings["n_photos"] = sizes
    first_photo = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    n_photos = int(sizes.sum())
    within = np.arange(n_photos) - np.repeat(first_photo, sizes)
    src_photo_rows = np.repeat(source.listings["first_photo"].to_numpy(np.int64)[src_rows], sizes) + within
    listings["first_photo"] = first_photo
    listing_index = np.repeat(np.arange(n_listings), sizes)
    photos = pd.DataFrame({"photo_index": np.arange(n_photos),
                           "listing_id": np.repeat(listings["listing_id"].to_numpy(), sizes),
                           "path": source.photos["path"].to_numpy()[src_photo_rows],
                           "listing_index": listing_index})
    write_parquet(paths.listing_table, listings)
    write_parquet(paths.photo_table, photos)

    # photo embeddings jittered (5% of their spread), listing embeddings = normalised mean of its photos
    src_photo_embeddings = source.photo_embeddings
    dim = src_photo_embeddings.shape[1] if max_dim is None else min(max_dim, src_photo_embeddings.shape[1])
    noise_scale = 0.05 * float(np.asarray(src_photo_embeddings[:10_000]).std())
    listing_embeddings = np.empty((n_listings, dim), np.float32)
    with atomic_path(paths.photo_embeddings) as tmp:
        photo_embeddings = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n_photos, dim))
        for start in range(0, n_listings, CHUNK_ROWS):
            stop = min(start + CHUNK_ROWS, n_listings)
            lo, hi = first_photo[start], first_photo[stop - 1] + sizes[stop - 1]
            chunk = np.asarray(src_photo_embeddings[src_photo_rows[lo:hi], :dim], dtype=np.float32)
            chunk += rng.standard_normal(chunk.shape, dtype=np.float32) * noise_scale
            photo_embeddings[lo:hi] = chunk
            sums = np.add.reduceat(chunk, first_photo[start:stop] - lo, axis=0)
            listing_embeddings[start:stop] = l2_normalise(sums / sizes[start:stop, None])
        photo_embeddings.flush()
        del photo_embeddings
    with atomic_path(paths.listing_embeddings) as tmp, open(tmp, "wb") as f:
        np.save(f, listing_embeddings)
    shutil.copyfile(paths.listing_embeddings, paths.new_task_embeddings)  # the app never reads it; the manifest does

    coordinates = source.coordinates.iloc[src_rows].reset_index(drop=True)
    spread = coordinates[["x", "y"]].std().to_numpy()
    xy = coordinates[["x", "y"]].to_numpy() + rng.normal(0, 1, (n_listings, 2)) * spread * 0.03
    write_parquet(paths.umap, pd.DataFrame({"listing_id": listings["listing_id"], "x": xy[:, 0].astype(np.float32),
                                            "y": xy[:, 1].astype(np.float32)}))
    predictions = source.predictions.iloc[src_rows].reset_index(drop=True)
    predictions["listing_id"] = listings["listing_id"]
    write_parquet(paths.predictions, predictions)
    for name in ("checkpoint", "train_log", "catalogue_report", "metrics"):
        shutil.copyfile(getattr(source.paths, name), getattr(paths, name))
    # any other file a step records (what this script does not make, e.g. a newer build's extra artifact) is the
    # source's own: the app's pages measured here read none of them, the manifest needs them present
    for files in STEP_FILES.values():
        for file_name in files.values():
            if not (out / file_name).exists() and (source_dir / file_name).exists():
                shutil.copyfile(source_dir / file_name, out / file_name)

    config = source.config.to_dict()
    config["index"]["n_trees"] = SYNTHETIC_INDEX_TREES
    save_index(build_index(listing_embeddings, BuildConfig.from_dict(config).index, seed=seed), paths.index)

    base = {key: source.manifest[key] for key in ("tasks", "holdout", "backbone") if key in source.manifest}
    base |= {"config": config, "synthetic": marker,
             "catalogue": {"root": f"synthetic, from {source_dir}", "n_listings": n_listings, "n_photos": n_photos}}
    for step in STEPS:
        record_step(out, step, hash_key("synthetic", step, marker), 0.0, {"synthetic": True},
                    base=base if step == STEPS[0] else None)
    print(f"made the synthetic run {out}: {n_listings:,} listings, {n_photos:,} photos "
          f"in {time.perf_counter() - started:.0f} s")
    return out
