"""The synthetic runs of the scale benchmark (``bench_scale.py``): a built run's listings repeated with new
ids up to any size, their photo table, embeddings and trunk cache, and the catalogue that train and embed
are given for them. What is synthetic and why: ``bench_scale.py``'s docstring.

Also the benchmark's vocabulary (its steps and variants), which the measuring, the report and the command
line share: this is the module the other two import.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gallery_core.artifacts.store import RunPaths, atomic_path, hash_key, record_step, write_parquet
from gallery_core.config import BuildConfig
from gallery_core.data.tasks import TaskSpec
from gallery_core.errors import UsageError
from gallery_core.vectors import l2_normalise

PHOTO_STEPS = ("trunk", "train", "embed")  # photos (or their trunk features) through the network
AFTER_EMBED = ("index", "project", "predict", "open")  # read only the embeddings
STEPS = PHOTO_STEPS + AFTER_EMBED
VARIANTS = ("streaming", "in-memory")
GENERATE_CHUNK = 20_000  # listings per chunk while writing the synthetic embeddings
CACHE_WRITE_CHUNK = 8192  # photos per block while writing the synthetic trunk cache
TRUNK_JITTER = 0.05  # noise added to the synthetic trunk features, as a fraction of their standard deviation


def make_scale_run(source_dir: Path, out: Path, n_listings: int, photos_per_listing: int,
                   config: BuildConfig, chunk_size: int, seed: int = 0, embeddings: bool = True) -> dict[str, int]:
    """A run folder with the train and embed steps' files of ``n_listings`` listings (see bench_scale.py's
    docstring), recorded in its manifest; the later steps are left to the benchmark. ``embeddings`` False:
    without the embed step's embedding files (not recorded as built), which only the steps after embed read:
    the photo steps write their own, and at 500k listings these are 18 GB of disk.

    Its ``model.pt`` is the source's, with the synthetic catalogue's fingerprint and trunk cache key, so
    that embed reads the synthetic trunk cache (``make_trunk_cache``) as it would a real one."""
    import torch

    from gallery_core.artifacts.run import Run
    from gallery_core.models.checkpoint import save_checkpoint

    source = Run(source_dir, verify=False, steps=("train", "embed"))  # all it reads
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    paths, rng = RunPaths(out), np.random.default_rng(seed)
    src_rows = rng.integers(0, len(source.listings), n_listings)  # (L,) source listing of each new one
    listings = source.listings.iloc[src_rows].reset_index(drop=True)
    listings["listing_id"] = [f"S{i + 1:07d}" for i in range(n_listings)]
    sizes = np.minimum(listings["n_photos"].to_numpy(np.int64), photos_per_listing)  # (L,)
    first_photo = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    listings["n_photos"], listings["first_photo"] = sizes, first_photo
    n_photos = int(sizes.sum())
    within = np.arange(n_photos) - np.repeat(first_photo, sizes)  # (P,) position in its gallery
    src_photo_rows = np.repeat(source.listings["first_photo"].to_numpy(np.int64)[src_rows], sizes) + within
    write_parquet(paths.listing_table, listings)
    write_parquet(paths.photo_table, pd.DataFrame({
        "photo_index": np.arange(n_photos), "listing_id": np.repeat(listings["listing_id"].to_numpy(), sizes),
        "path": source.photos["path"].to_numpy()[src_photo_rows], "listing_index": np.repeat(np.arange(n_listings), sizes)}))

    dim = source.photo_embeddings.shape[1]
    if embeddings:
        write_embeddings(source, paths, src_rows, src_photo_rows, sizes, first_photo, rng)

    fingerprint = hash_key("bench_scale catalogue", str(source_dir), n_listings, photos_per_listing, seed)
    checkpoint = torch.load(source.paths.checkpoint, map_location="cpu", weights_only=True)
    source_key = checkpoint["trunk_cache_key"]  # the source's trunk cache, which make_trunk_cache repeats
    checkpoint |= {"catalogue_fingerprint": fingerprint, "trunk_cache_key": trunk_key(config, source.tasks, fingerprint),
                   "val_listing_ids": listings.loc[listings["split"] == "val", "listing_id"].tolist()}
    save_checkpoint(paths.checkpoint, checkpoint)
    for name in ("train_log", "catalogue_report", "whitening"):  # whitening: the source's fits these embeddings too
        shutil.copyfile(getattr(source.paths, name), getattr(paths, name))
    base = {key: source.manifest[key] for key in ("tasks", "holdout", "backbone") if key in source.manifest}
    base |= {"config": config.to_dict(),
             "synthetic": {"source": str(source_dir), "n_listings": n_listings, "chunk_size": chunk_size,
                           "source_trunk_cache_key": source_key,
                           "trunk_cache_key": checkpoint["trunk_cache_key"]},
             "catalogue": {"root": f"synthetic, from {source_dir}", "fingerprint": fingerprint,
                           "n_listings": n_listings, "n_photos": n_photos}}
    for step in ("train", "embed") if embeddings else ("train",):
        record_step(out, step, hash_key("bench_scale", step, n_listings), 0.0, {"synthetic": True},
                    base=base if step == "train" else None)
    return {"listings": n_listings, "photos": n_photos, "dim": int(dim)}


def write_embeddings(source: Any, paths: RunPaths, src_rows: np.ndarray, src_photo_rows: np.ndarray,
                     sizes: np.ndarray, first_photo: np.ndarray, rng: np.random.Generator) -> None:
    """The synthetic run's photo embeddings (the source's, jittered), listing embeddings (their normalised
    means) and new-task embeddings (the source's, jittered), written a chunk of listings at a time."""
    n_listings, n_photos = len(sizes), len(src_photo_rows)
    dim, new_dim = source.photo_embeddings.shape[1], source.new_task_embeddings.shape[1]
    noise = 0.05 * float(np.asarray(source.photo_embeddings[:10_000]).std())
    with atomic_path(paths.photo_embeddings) as photo_tmp, atomic_path(paths.listing_embeddings) as listing_tmp, \
            atomic_path(paths.new_task_embeddings) as new_tmp:
        photo_out = np.lib.format.open_memmap(photo_tmp, mode="w+", dtype=np.float32, shape=(n_photos, dim))
        listing_out = np.lib.format.open_memmap(listing_tmp, mode="w+", dtype=np.float32, shape=(n_listings, dim))
        new_out = np.lib.format.open_memmap(new_tmp, mode="w+", dtype=np.float32, shape=(n_listings, new_dim))
        for start in range(0, n_listings, GENERATE_CHUNK):
            stop = min(start + GENERATE_CHUNK, n_listings)
            lo, hi = first_photo[start], first_photo[stop - 1] + sizes[stop - 1]
            chunk = np.asarray(source.photo_embeddings[src_photo_rows[lo:hi]], dtype=np.float32)  # (chunk P, D)
            chunk += rng.standard_normal(chunk.shape, dtype=np.float32) * noise
            photo_out[lo:hi] = chunk
            means = np.add.reduceat(chunk, first_photo[start:stop] - lo, axis=0) / sizes[start:stop, None]
            listing_out[start:stop] = l2_normalise(means)
            transfer = np.asarray(source.new_task_embeddings[src_rows[start:stop]], dtype=np.float32)
            new_out[start:stop] = l2_normalise(transfer + rng.standard_normal(transfer.shape, dtype=np.float32) * 0.05
                                               / np.sqrt(new_dim))
        for array in (photo_out, listing_out, new_out):
            array.flush()
        del photo_out, listing_out, new_out


def trunk_key(config: BuildConfig, tasks: tuple[TaskSpec, ...], fingerprint: str) -> str:
    """The trunk cache key ``train`` computes for a catalogue with this fingerprint (from the backbone of the
    model it builds, as ``training.loop.train`` does)."""
    from gallery_core.data.photos import trunk_cache_key
    from gallery_core.models.checkpoint import build_model

    backbone = build_model(config.model, tasks).encoder.backbone
    return trunk_cache_key(fingerprint, backbone, config.model.image_size)


def cache_names(photos: pd.DataFrame) -> list[str]:
    """The name of each synthetic photo in the trunk cache's index and in the catalogue that train and embed
    read: its file (a source photo, repeated across listings) and its row, since the cache finds rows by name
    and a name repeated would make it gather a copy instead of reading the file as it goes. No file is opened
    by them."""
    return (photos["path"].astype(str) + "#" + photos["photo_index"].astype(str)).tolist()


def make_trunk_cache(run_dir: Path, seed: int = 0) -> None:
    """The synthetic run's trunk cache (``cache/trunk-<key>.npy`` + its ``.json`` index, the product's format,
    under the key train looks up): each synthetic photo gets the source's cached features of the photo file
    it repeats, jittered (``TRUNK_JITTER``), written a chunk at a time."""
    from gallery_core.artifacts.npy_rows import RowWriter
    from gallery_core.data.photos import write_trunk_index

    paths = RunPaths(run_dir)
    synthetic = json.loads(paths.manifest.read_text())["synthetic"]
    source_cache = RunPaths(Path(synthetic["source"])).cache_dir
    source_npy = source_cache / f"trunk-{synthetic['source_trunk_cache_key']}.npy"
    source_index = source_npy.with_suffix(".json")
    if not (source_npy.is_file() and source_index.is_file()):
        raise UsageError(f"{source_npy}: the source run's trunk cache (and its .json index) is missing; train and "
                         "embed are measured from it (rebuild the source's train step, or leave train and embed "
                         "out of --steps)")
    source_features = np.load(source_npy, mmap_mode="r")  # (source P, C, h, w) float16
    photos = pd.read_parquet(paths.photo_table, columns=["photo_index", "path"])
    rows = pd.Index(json.loads(source_index.read_text())["paths"]).get_indexer(photos["path"])  # (P,)
    if (rows < 0).any():
        raise UsageError(f"{source_index}: has no features for {photos['path'][rows < 0].iloc[0]} (a photo the "
                         "source run skipped?)")
    rng = np.random.default_rng(seed)
    sample = np.asarray(source_features[:2048], dtype=np.float32)
    noise = TRUNK_JITTER * float(sample.std())
    out = paths.cache_dir / f"trunk-{synthetic['trunk_cache_key']}.npy"
    writer = RowWriter(out, len(photos))
    try:
        for start in range(0, len(photos), CACHE_WRITE_CHUNK):
            block = np.asarray(source_features[rows[start:start + CACHE_WRITE_CHUNK]], dtype=np.float32)  # (n, C, h, w)
            block += rng.standard_normal(block.shape, dtype=np.float32) * noise
            writer.append(block.astype(np.float16))
        write_trunk_index(out.with_suffix(".json"), cache_names(photos), {})
        writer.finish(empty_shape=(0,), dtype=np.float16)
    finally:
        writer.close()


def synthetic_catalogue(run_dir: Path):  # -> gallery_core.data.catalogue.Catalogue
    """The catalogue that train and embed are given for the synthetic run: its listings (the attribute
    columns), its photos named as in its trunk cache (``cache_names``), the source's tasks, and the
    fingerprint its trunk cache key was made from."""
    from gallery_core.data.catalogue import Catalogue
    from gallery_core.data.photo_files import CatalogueReport

    paths = RunPaths(run_dir)
    manifest = json.loads(paths.manifest.read_text())
    listings = pd.read_parquet(paths.listing_table).drop(columns=["split", "n_photos", "first_photo"])
    photos = pd.read_parquet(paths.photo_table, columns=["photo_index", "listing_id", "path"])
    photos = pd.DataFrame({"listing_id": photos["listing_id"], "path": cache_names(photos)})
    return Catalogue(root=run_dir, listings=listings, photos=photos,
                     tasks=tuple(TaskSpec.from_dict(t) for t in manifest["tasks"]),
                     holdout=tuple(manifest.get("holdout", [])), report=CatalogueReport(),
                     fingerprint=manifest["catalogue"]["fingerprint"])


def step_folder(run_dir: Path, step: str, variant: str) -> Path:
    """Where a measured trunk, train or embed step writes (not the synthetic run, which the later steps read)."""
    return run_dir / f"bench-{step}-{variant}"

