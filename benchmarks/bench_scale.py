"""Scale benchmark: every step of the build, and opening the run in the app, at 10k / 50k / 500k listings.

    python benchmarks/bench_scale.py [--sizes 10000 50000 500000] [--source artifacts/demo]
                                     [--photos-per-listing 4] [--baseline-max 50000] [--photo-max 50000]
                                     [--steps trunk train embed index project predict open]
                                     [--merge PREVIOUS.json] [--work DIR] [--out docs/benchmarks/scale.md]
                                     [--quick] [--keep] [--template]

What it measures, per size: a synthetic run is made from a built run (``--source``): its listings
repeated with new ids (so the labels and tasks are real ones), each with at most
``--photos-per-listing`` photos. Its photo table names the source catalogue's real photo files (repeated
across the synthetic listings); its photo embeddings are the source's, jittered, written chunk by chunk into
memory-mapped ``.npy`` files; listing embeddings are their normalised means. Then each step runs in its own
subprocess:

* ``trunk``   the frozen-trunk pass over real photos (``data.photos.cached_trunk_features``, as training calls
              it, with the source run's backbone and image size): every photo of the photo table decoded and
              run through the trunk, features appended chunk by chunk to ``cache/trunk-<key>.npy.partial``,
* ``train``   training from the trunk cache (``training.loop.train``) for exactly one epoch (``max_epochs`` 1:
              one training and one validation pass over the listings, no early stop), with synthetic trunk
              features: the source run's cached ones repeated to the synthetic photos and jittered, written
              in the cache format under the key ``train`` looks up (decoding every photo again would dominate),
* ``embed``   the embed step (``pipeline.embed.embed``) from that trunk cache: photo embeddings a chunk at a
              time, listing sums accumulated,
* ``index``   Annoy build (the build's own step: embeddings read in chunks, on-disk build),
* ``project`` the 2-D map (``pipeline.projection.fit_projection``: UMAP on a sample + ``transform`` above
              ``ProjectionConfig.fit_sample``),
* ``predict`` head predictions in chunks and out-of-fold probes on at most ``PredictConfig.probe_sample``
              listings per fold (``pipeline.predict.predict_all``),
* ``open``    the app's start-up: the run's check (sizes + checksum cache), ``Run`` and the Overview page's
              first server-side render (``streamlit.testing.v1.AppTest``), right after the build.

The trunk pass, training and embed run at sizes up to ``--photo-max`` (the issue asks for them at 10k and
50k; the 500k rows are of the steps after embed only). Each step is measured against the obvious
alternative, the in-memory path of before issue 12, on sizes up to ``--baseline-max`` (at 500k it would need
tens of GB and hours): the trunk pass's features gathered in one array, then saved with ``np.save`` (the
product's pass run a chunk at a time through ``compute_trunk_features``, chunks concatenated); training and
embed with the whole trunk cache copied into memory (embed then computes every photo embedding in one array
and saves it, as before issue 12); arrays read whole with ``np.load``; Annoy built in memory then saved; UMAP
fit on every point; probes trained on every labelled listing (what ``cross_val_predict`` did before); the app
hashing every file on every start (``check_run`` "full"). The product keeps trunk caches below
``training.data.TRUNK_IN_MEMORY_MAX_BYTES`` (2 GiB) in memory, and the caches at 10k and 50k are below it:
``train``'s streaming child sets it to 0, so the product's path for large caches (rows read from the cache
file per batch) is the one measured, and its in-memory child raises it above the cache's size. The streaming
variants of index, project and predict are the build's own steps (``pipeline.build.STEP_FUNCTIONS``).

Per step and variant: wall time of the subprocess (Python start-up and imports included), the time of the
step itself, the peak resident set (``VmHWM``: includes pages of memory-mapped files, which the kernel can
drop under pressure) and the peak anonymous memory (``RssAnon`` polled every 20 ms: what the step really
needs). Then the slope of time and memory against size (a power law fitted in log-log) and an
extrapolation to the paper's catalogue.

Writes the Markdown (``--out``), the raw figures beside it (``.json``) and a log-log plot (``.png``). Every row
records when and by which command it was measured (``measured``); ``--merge PREVIOUS.json`` keeps the rows of
an earlier results file whose (listings, step, variant) this invocation did not measure, so the document can
be completed by several invocations. ``--quick`` runs tiny sizes with small sample thresholds and chunks in
seconds (tests/test_bench_scale.py). Do not run the big sizes on a busy machine: the figures are only
meaningful on a quiet one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # the app's ui/ package sits beside gallery_core, not inside it

from gallery_core.artifacts.store import (  # noqa: E402
    RunPaths,
    atomic_path,
    hash_key,
    record_step,
    write_json,
    write_parquet,
)
from gallery_core.config import BuildConfig  # noqa: E402
from gallery_core.data.tasks import TaskSpec  # noqa: E402
from gallery_core.errors import UsageError  # noqa: E402
from gallery_core.vectors import l2_normalise  # noqa: E402

PHOTO_STEPS = ("trunk", "train", "embed")  # photos (or their trunk features) through the network
AFTER_EMBED = ("index", "project", "predict", "open")  # read only the embeddings
STEPS = PHOTO_STEPS + AFTER_EMBED
VARIANTS = ("streaming", "in-memory")
DEFAULT_SIZES = (10_000, 50_000, 500_000)
QUICK_SIZES = (150, 300)
QUICK_CHUNK = 32  # photos per chunk of the trunk pass and embed in --quick, so tiny runs have several chunks
GENERATE_CHUNK = 20_000  # listings per chunk while writing the synthetic embeddings
CACHE_WRITE_CHUNK = 8192  # photos per block while writing the synthetic trunk cache
TRUNK_JITTER = 0.05  # noise added to the synthetic trunk features, as a fraction of their standard deviation
POLL_S = 0.02
PAPER_LISTINGS = 520_000  # the gallery-encoder paper's catalogue: 520k listings, ~10M photos
TARGET_PHOTOS = 10_000_000
RSS_BUDGET_GB = 8.0
OPEN_BUDGET_S = 3.0
SYNTHETIC_RUN_NAME = "scale"
COMMAND = "python benchmarks/bench_scale.py"


# --- the synthetic run ---

def make_scale_run(source_dir: Path, out: Path, n_listings: int, photos_per_listing: int,
                   config: BuildConfig, chunk_size: int, seed: int = 0) -> dict[str, int]:
    """A run folder with the train and embed steps' files of ``n_listings`` listings (see the module
    docstring), recorded in its manifest; the later steps are left to the benchmark.

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
    for step in ("train", "embed"):
        record_step(out, step, hash_key("bench_scale", step, n_listings), 0.0, {"synthetic": True},
                    base=base if step == "train" else None)
    return {"listings": n_listings, "photos": n_photos, "dim": int(dim)}


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


# --- the steps, each run in a subprocess of its own (``--step``) ---

def run_photo_step(step: str, run_dir: Path, variant: str, config: BuildConfig, synthetic: dict[str, Any],
                   ) -> dict[str, Any]:
    """The trunk pass, training or embed on the synthetic run (see the module docstring); returns the step's
    own time (``step_seconds``, set-up excluded) and what else the parent records."""
    import gallery_core.training.data as training_data
    from gallery_core.engine.execution import Execution
    from gallery_core.models.device import pick_device

    out = step_folder(run_dir, step, variant)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    run_paths, out_paths = RunPaths(run_dir), RunPaths(out)
    chunk_size, key = synthetic["chunk_size"], synthetic["trunk_cache_key"]
    device = pick_device(None)  # as the build: the GPU where there is one
    if step == "trunk":
        return trunk_pass(run_dir, out, variant, config, key, chunk_size, device)
    catalogue = synthetic_catalogue(run_dir)
    info: dict[str, Any] = {}
    if step == "train":
        import gallery_core.training.loop as loop

        # The product keeps a cache below this many bytes in memory, and the caches here are below it: 0 forces
        # its path for large caches, rows read from the file per batch (streaming); above the cache's size, its
        # in-memory copy (in-memory).
        training_data.TRUNK_IN_MEMORY_MAX_BYTES = 0 if variant == "streaming" else sys.maxsize
        one_epoch = replace(config, train=replace(config.train, max_epochs=1))
        record_trunk_form(loop, info)
        started = time.perf_counter()
        result = loop.train(catalogue, one_epoch, out, device=None, progress=False, cache_dir=run_paths.cache_dir,
                            execution=Execution(chunk_size=chunk_size))
        return {"step_seconds": time.perf_counter() - started, "epochs_run": result.epochs_run, **info}

    # embed: its run folder holds the synthetic model.pt and sees the synthetic trunk cache
    shutil.copyfile(run_paths.checkpoint, out_paths.checkpoint)
    out_paths.cache_dir.mkdir()
    for suffix in (".npy", ".json"):
        (out_paths.cache_dir / f"trunk-{key}{suffix}").symlink_to(run_paths.cache_dir / f"trunk-{key}{suffix}")
    if variant == "streaming":
        import gallery_core.pipeline.embed as embed

        record_trunk_form(embed, info)
        started = time.perf_counter()
        embed.embed(catalogue, out, device=None, progress=False, embed_config=config.embed,
                    execution=Execution(chunk_size=chunk_size))
    else:
        started = time.perf_counter()
        info["trunk_from_file"] = embed_in_memory(catalogue, out, config)
    return {"step_seconds": time.perf_counter() - started, **info}


def trunk_pass(run_dir: Path, out: Path, variant: str, config: BuildConfig, key: str, chunk_size: int,
               device: Any) -> dict[str, Any]:
    """The frozen-trunk pass over the run's photo files into ``out/cache``: the product's (streaming), or as
    before issue 12, the same chunks' features gathered in memory and saved in one go (in-memory)."""
    from gallery_core.data.photos import cached_trunk_features, compute_trunk_features, write_trunk_index
    from gallery_core.models.checkpoint import build_model

    run_paths, cache_dir = RunPaths(run_dir), RunPaths(out).cache_dir
    tasks = tuple(TaskSpec.from_dict(t) for t in json.loads(run_paths.manifest.read_text())["tasks"])
    backbone = build_model(config.model, tasks).encoder.backbone  # the model's, as train passes it
    photo_paths = pd.read_parquet(run_paths.photo_table, columns=["path"])["path"].tolist()  # real files
    started = time.perf_counter()
    if variant == "streaming":  # chunks appended to cache/trunk-<key>.npy.partial
        _, bad = cached_trunk_features(cache_dir, key, backbone, photo_paths, config.model.image_size, device,
                                       progress=False, chunk_size=chunk_size)
    else:
        blocks, bad = [], {}
        for start in range(0, len(photo_paths), chunk_size):
            block, bad_in_chunk = compute_trunk_features(backbone, photo_paths[start:start + chunk_size],
                                                         config.model.image_size, device=device, progress=False)
            blocks.append(block)  # (n, C, h, w) float16
            bad.update({start + i: reason for i, reason in bad_in_chunk.items()})
        features = np.concatenate(blocks)  # (P, C, h, w): every photo's features at once
        features_path = cache_dir / f"trunk-{key}.npy"
        with atomic_path(features_path) as tmp, open(tmp, "wb") as f:
            np.save(f, features)
        write_trunk_index(features_path.with_suffix(".json"), photo_paths, bad)
    return {"step_seconds": time.perf_counter() - started, "photos_decoded": len(photo_paths),
            "photos_undecodable": len(bad)}


def record_trunk_form(module: Any, info: dict[str, Any]) -> None:
    """Wrap ``module.prepare_data`` (what train and embed call) so that ``info["trunk_from_file"]`` says whether
    the step read the trunk features from the cache file as it went (True) or held them in memory (False)."""
    import torch

    original = module.prepare_data

    def recording(*args: Any, **kwargs: Any) -> Any:
        data = original(*args, **kwargs)
        info["trunk_from_file"] = not isinstance(data.trunk_features, torch.Tensor)
        return data
    module.prepare_data = recording


def embed_in_memory(catalogue: Any, run_dir: Path, config: BuildConfig, batch_size: int = 1024) -> bool:
    """Embed as before issue 12, through the product's functions: the whole trunk cache in memory, every photo
    embedding computed in one array, listing means from it, the arrays saved whole. (The photo and listing
    tables, the same in both paths, are left out here.) Returns whether the trunk features were read from the file
    (False: they were in memory)."""
    import torch

    from gallery_core.artifacts.store import write_npy
    from gallery_core.models.checkpoint import load_checkpoint
    from gallery_core.pipeline.embed import (
        encode_trunk_features,
        mean_per_listing,
        new_task_embeddings,
        pretrained_photo_features,
    )
    from gallery_core.training.data import prepare_data

    paths = RunPaths(run_dir)
    model, checkpoint = load_checkpoint(paths.checkpoint)
    device = next(model.parameters()).device
    data = prepare_data(catalogue, model, config.model, paths.cache_dir, checkpoint["trunk_cache_key"],
                        use_cache=True, device=device, progress=False, in_memory=True)
    photo_embeddings = encode_trunk_features(model.encoder, data.trunk_features, device, batch_size)  # (P, D)
    sizes = np.diff(data.photo_offsets)  # (L,)
    listing_index = np.repeat(np.arange(len(sizes)), sizes)  # (P,)
    learned = mean_per_listing(photo_embeddings, listing_index, len(sizes))  # (L, D)
    pretrained = None
    if config.embed.new_task_features != "learned":
        photo_pretrained = pretrained_photo_features(config.model, data.trunk_features, device, batch_size)  # (P, F)
        pretrained = mean_per_listing(photo_pretrained, listing_index, len(sizes))
    write_npy(paths.photo_embeddings, photo_embeddings)
    # The retrieval space, fitted on the training listings' photos as the embed step fits it.
    from gallery_core.search.whitening import fit_sample, fit_whitening

    is_train = ~data.catalogue.listings["listing_id"].isin(set(checkpoint["val_listing_ids"])).to_numpy()
    rows = np.flatnonzero(np.repeat(is_train, sizes))
    rows = rows if len(rows) >= 3 else np.arange(len(photo_embeddings))
    whitening = fit_whitening(photo_embeddings[fit_sample(rows, config.train.seed)], config.embed.whitening_dim)
    write_npy(paths.listing_embeddings, l2_normalise(whitening.transform(learned)))
    whitening.save(paths.whitening)
    write_npy(paths.new_task_embeddings, new_task_embeddings(learned, pretrained, config.embed.new_task_features))
    return not isinstance(data.trunk_features, torch.Tensor)


def run_step(step: str, run_dir: Path, variant: str) -> dict[str, Any]:
    """Do one step on the run; returns what the parent records besides time and memory."""
    paths = RunPaths(run_dir)
    manifest = json.loads(paths.manifest.read_text())
    config = BuildConfig.from_dict(manifest["config"])
    if step in PHOTO_STEPS:
        return run_photo_step(step, run_dir, variant, config, manifest["synthetic"])
    if step == "open":
        info = open_in_app(run_dir, variant)
        return {"step_seconds": info["render_seconds"], **info}
    # Imported before the clock starts, by both variants: a build has it imported (torch included).
    from gallery_core.pipeline.build import STEP_FUNCTIONS

    started = time.perf_counter()
    if variant == "streaming":  # the product: the build's own step
        STEP_FUNCTIONS[step](run_dir, config, None, None, False)
    else:
        run_in_memory(step, run_dir, config)
    seconds = time.perf_counter() - started
    if variant == "streaming":  # the run's manifest records it, as the build would
        record_step(run_dir, step, hash_key("bench_scale", step, manifest["synthetic"]), seconds, {"synthetic": True})
    return {"step_seconds": seconds}


def run_in_memory(step: str, run_dir: Path, config: BuildConfig) -> None:
    """A step after embed as before issue 12 (see the module docstring); writes beside the run's own files."""
    paths, seed = RunPaths(run_dir), config.train.seed
    if step == "index":
        from gallery_core.search.index import build_index, save_index

        embeddings = np.load(paths.listing_embeddings)  # (L, D)
        save_index(build_index(embeddings, config.index, seed=seed), run_dir / "index-in-memory.ann")
    elif step == "project":
        from gallery_core.pipeline.projection import fit_projection

        embeddings = np.load(paths.listing_embeddings)  # (L, D)
        coords = fit_projection(embeddings, replace(config.projection, fit_sample=len(embeddings)),  # every point
                                seed=seed)
        ids = pd.read_parquet(paths.listing_table, columns=["listing_id"])["listing_id"]
        write_parquet(run_dir / "umap-in-memory.parquet", pd.DataFrame({"listing_id": ids, "x": coords[:, 0],
                                                                       "y": coords[:, 1]}))
    elif step == "predict":
        import gallery_core.pipeline.predict as predict
        from gallery_core.models.checkpoint import load_checkpoint

        model, _ = load_checkpoint(paths.checkpoint, device="cpu")
        listings = pd.read_parquet(paths.listing_table)
        listing_index = pd.read_parquet(paths.photo_table, columns=["listing_index"])["listing_index"].to_numpy()
        # One chunk, every labelled listing in every probe. The heads' chunk size is a default argument, bound
        # when the module was imported, so the function is replaced, not the constant.
        predict.CHUNK_LISTINGS = len(listings)
        predict.chunked_head_predictions = partial(predict.chunked_head_predictions, chunk_listings=len(listings))
        predict.predict_all(model.heads, model.heads.tasks, listings, np.load(paths.photo_embeddings), listing_index,
                            np.load(paths.new_task_embeddings), replace(config.predict, probe_sample=len(listings)),
                            seed=seed, progress=False)
    else:
        raise ValueError(f"unknown step {step!r}")


def complete_run(run_dir: Path, measured: list[str]) -> None:
    """Give the run the files of the steps after embed that were not measured (``--steps``), so the app can
    open it: index and predict done here, unmeasured; the map a stand-in (the first two embedding
    dimensions), since UMAP's compilation alone takes minutes in a fresh process."""
    for step in ("index", "predict"):
        if step not in measured:
            run_step(step, run_dir, "streaming")
    if "project" not in measured:
        paths = RunPaths(run_dir)
        embeddings = np.load(paths.listing_embeddings, mmap_mode="r")
        ids = pd.read_parquet(paths.listing_table, columns=["listing_id"])["listing_id"]
        write_parquet(paths.umap, pd.DataFrame({"listing_id": ids, "x": embeddings[:, 0], "y": embeddings[:, 1]}))
        record_step(run_dir, "project", hash_key("bench_scale", "stand-in map"), 0.0, {"stand_in": True})


def open_in_app(run_dir: Path, variant: str) -> dict[str, Any]:
    """A server's first page after start-up: the run's check, ``Run`` and the Overview page, rendered by
    AppTest; "in-memory" = today's full check (every file hashed on every start)."""
    import gallery_core.artifacts.store as store
    from gallery_core.artifacts.check import check_run

    hashed: list[str] = []
    original = store.file_checksum
    store.file_checksum = lambda path: hashed.append(Path(path).name) or original(path)
    if variant == "in-memory":
        check_run.__defaults__ = ("full",)  # the app's check as it was: every file hashed
    root = Path(tempfile.mkdtemp(prefix="bench-scale-artifacts-"))
    (root / SYNTHETIC_RUN_NAME).symlink_to(run_dir.resolve(), target_is_directory=True)
    os.environ["GALLERY_CORE_ARTIFACTS"] = str(root)
    from streamlit import logger

    import ui.loaders  # noqa: F401  (the app's modules, imported before timing as a running server has them)
    from gallery_core.app import summary  # noqa: F401
    from ui.testing import app_test

    logger.set_log_level("error")
    at = app_test(timeout_s=3600)
    at.session_state["run_name"] = SYNTHETIC_RUN_NAME
    started = time.perf_counter()
    at.run()
    render = time.perf_counter() - started
    shutil.rmtree(root)
    if at.exception:
        raise RuntimeError(f"Overview: {at.exception[0].value}")
    if at.error:
        raise RuntimeError(f"Overview: {at.error[0].value}")
    return {"render_seconds": render, "files_hashed": len(hashed)}


def _poll_memory(pid: int, peak: dict[str, int], done: threading.Event) -> None:
    """Peak RssAnon (kB) of a process, polled until ``done``."""
    while not done.is_set():
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("RssAnon:"):
                    peak["anon_kb"] = max(peak.get("anon_kb", 0), int(line.split()[1]))
        except (OSError, ValueError):
            pass
        done.wait(POLL_S)


def measure(step: str, run_dir: Path, variant: str) -> dict[str, Any]:
    """Run one step in a subprocess: its wall time, peak RSS (its ``VmHWM``), peak anonymous RSS (polled)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--step", step, "--run", str(run_dir),
               "--variant", variant]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT)
    peak: dict[str, int] = {}
    done = threading.Event()
    poller = threading.Thread(target=_poll_memory, args=(process.pid, peak, done), daemon=True)
    poller.start()
    stdout, stderr = process.communicate()
    wall = time.perf_counter() - started
    done.set()
    poller.join()
    if process.returncode != 0:
        raise RuntimeError(f"step {step} ({variant}) failed:\n{stderr[-3000:]}")
    result = json.loads(stdout.strip().splitlines()[-1])
    return {"step": step, "variant": variant, "wall_seconds": wall, **result,
            "peak_rss_gb": result["peak_rss_kb"] / 1e6, "peak_anon_gb": peak.get("anon_kb", 0) / 1e6}


def child_main(step: str, run_dir: Path, variant: str) -> None:
    result = run_step(step, run_dir, variant)
    # VmHWM, not getrusage's ru_maxrss: Linux keeps ru_maxrss across execve, so a child's would include the
    # resident set of the parent it was forked from.
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    result["peak_rss_kb"] = int(status["VmHWM"].split()[0])
    print(json.dumps(result))


# --- the report ---

def power_law(sizes: np.ndarray, values: np.ndarray) -> tuple[float, float] | None:
    """(slope, intercept) of log(value) = slope * log(size) + intercept; None with fewer than 2 sizes."""
    ok = (values > 0) & np.isfinite(values)
    if len(np.unique(sizes[ok])) < 2:
        return None
    slope, intercept = np.polyfit(np.log(sizes[ok]), np.log(values[ok]), 1)
    return float(slope), float(intercept)


def scaling_table(rows: pd.DataFrame, photos_per_listing: float) -> pd.DataFrame:
    """Per step and variant: slope of time and of peak memory against listings, extrapolated to the paper's
    520k listings and to 10M photos at this benchmark's photos per listing. A step and variant measured at
    one size only has no slope and is left out."""
    targets = {"paper": PAPER_LISTINGS, "10M photos": TARGET_PHOTOS / photos_per_listing}
    out = []
    for (step, variant), group in rows.groupby(["step", "variant"], sort=False):
        if group["listings"].nunique() < 2:
            continue
        entry: dict[str, Any] = {"step": step, "variant": variant}
        for measure_name, column in (("time", "step_seconds"), ("anon memory", "peak_anon_gb")):
            fit = power_law(group["listings"].to_numpy(float), group[column].to_numpy(float))
            entry[f"{measure_name} slope"] = None if fit is None else round(fit[0], 2)
            for target_name, target in targets.items():
                unit = "s" if measure_name == "time" else "GB"
                entry[f"{measure_name} at {target_name} ({unit})"] = None if fit is None else \
                    float(np.exp(fit[1]) * target ** fit[0])
        out.append(entry)
    return pd.DataFrame(out)


def read_previous(path: Path, photos_per_listing: int) -> dict[str, Any]:
    """An earlier results file to merge (``--merge``), checked before anything is measured."""
    try:
        previous = json.loads(path.read_text())
        rows = previous["rows"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UsageError(f"--merge {path}: not a results file of this benchmark ({type(err).__name__}: {err})") from None
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not {"listings", "step", "variant"} <= set(row):
            raise UsageError(f"--merge {path}: row {i} lacks listings, step or variant")
    if previous.get("photos_per_listing") != photos_per_listing:
        raise UsageError(f"--merge {path}: measured at {previous.get('photos_per_listing')} photos per listing, this "
                         f"invocation at {photos_per_listing}; give the same --photos-per-listing")
    return previous


def merge_rows(rows: list[dict[str, Any]], previous: dict[str, Any]) -> list[dict[str, Any]]:
    """This invocation's rows and the earlier file's rows whose (listings, step, variant) it did not measure,
    in the order of the table; an earlier row without a ``measured`` field gets the earlier file's date and
    note."""
    date = re.search(r"\d{4}-\d{2}-\d{2}", previous.get("machine", ""))
    earlier = f"{date.group(0) if date else 'an earlier date'}: {previous.get('note', 'an earlier invocation')}"
    measured = {(r["listings"], r["step"], r["variant"]) for r in rows}
    kept = [{"measured": earlier} | row for row in previous["rows"]
            if (row["listings"], row["step"], row["variant"]) not in measured]
    order = {step: i for i, step in enumerate(STEPS)} | {variant: i for i, variant in enumerate(VARIANTS)}
    return sorted(kept + rows, key=lambda r: (r["listings"], order.get(r["step"], 99), order.get(r["variant"], 99)))


def first_value(frame: pd.DataFrame, column: str) -> float | None:
    """The column's first value, None where there is no row or no value (a row merged from an earlier file
    may lack a column)."""
    if not len(frame) or column not in frame or pd.isna(frame[column].iloc[0]):
        return None
    return float(frame[column].iloc[0])


def _number(value: Any, fmt: str = "{:,.1f}") -> str:
    return "_(to be measured)_" if value is None or pd.isna(value) else fmt.format(value)


def after_embed_lines(rows: pd.DataFrame | None) -> list[str]:
    """The steps after embed at the largest size they were measured at, against the issue's budgets (memory,
    the app's first page); ``rows`` None: placeholders."""
    after = rows[(rows["variant"] == "streaming") & rows["step"].isin(AFTER_EMBED)] if rows is not None else None
    if after is not None and not len(after):
        return ["- The steps after embed: not measured by these invocations."]
    largest = after["listings"].max() if after is not None else None
    at_largest = after[after["listings"] == largest] if after is not None else pd.DataFrame()
    peak = at_largest["peak_anon_gb"].max() if len(at_largest) else None
    peak_rss = at_largest["peak_rss_gb"].max() if len(at_largest) else None
    open_row = at_largest[at_largest["step"] == "open"] if len(at_largest) else pd.DataFrame()
    render, hashed = (first_value(open_row, column) for column in ("render_seconds", "files_hashed"))
    verdict_memory = "" if peak is None else (" (under" if peak < RSS_BUDGET_GB else " (NOT under") + \
        f" the {RSS_BUDGET_GB:.0f} GB budget)"
    verdict_open = "" if render is None else (" (under" if render < OPEN_BUDGET_S else " (NOT under") + \
        f" the {OPEN_BUDGET_S:.0f} s budget)"
    return [f"- {_number(largest, '{:,}')} listings: the largest peak anonymous memory of a step after embed is "
            f"{_number(peak, '{:.2f}')} GB{verdict_memory}; the largest peak RSS counting mapped file pages "
            f"{_number(peak_rss, '{:.2f}')} GB.",
            f"- The app's first page (Overview, server side, right after the build: the run's check, opening "
            f"it, rendering) takes {_number(render, '{:.2f}')} s{verdict_open}, hashing "
            f"{_number(hashed, '{:.0f}')} files: the build's hashes are trusted through the run's checksum cache "
            "(sizes and mtimes), and full checksums are computed once per build or on demand "
            "(`check_run(root, 'full')`)."]


def photo_step_lines(rows: pd.DataFrame | None) -> list[str]:
    """The trunk pass, training and embed at the largest size they were measured at: peak anonymous memory of
    both variants; ``rows`` None: placeholders."""
    photo = rows[rows["step"].isin(PHOTO_STEPS)] if rows is not None else None
    if photo is not None and not len(photo):
        return ["- The trunk pass, training and embed: not measured by these invocations.", ""]
    largest = photo["listings"].max() if photo is not None else None
    lines = []
    for step in PHOTO_STEPS:
        at = photo[(photo["listings"] == largest) & (photo["step"] == step)] if photo is not None else pd.DataFrame()
        anon = {variant: at.loc[at["variant"] == variant, "peak_anon_gb"].max() if len(at) else None
                for variant in VARIANTS}
        lines.append(f"- {_number(largest, '{:,}')} listings, `{step}`: peak anonymous memory "
                     f"{_number(anon['streaming'], '{:.2f}')} GB streaming, "
                     f"{_number(anon['in-memory'], '{:.2f}')} GB in memory.")
    return lines + [""]


def markdown_report(results: dict[str, Any] | None) -> str:
    """The document; with ``results`` None, the same prose with placeholders where the numbers go."""
    rows = pd.DataFrame(results["rows"]) if results else pd.DataFrame()
    p = results["photos_per_listing"] if results else None
    photo = results.get("photo_config", {}) if results else {}
    lines = ["# Scale benchmark: every step of the build, and opening the run, at 10k to 500k listings", "",
             f"Made by `{COMMAND}` (the module docstring says what is measured and how), in the invocations "
             "listed under the table. " + (f"Machine: {results['machine']}." if results else
                                          "Machine: _(to be measured)_"), "",
             "**What is synthetic.** The runs are made from the demo run's listings (repeated with new ids: real "
             f"labels and tasks), at most {_number(p, '{:d}')} photos per listing. *Trunk pass*: real photos, "
             "the demo catalogue's JPEG files (repeated across the synthetic listings), decoded and run through "
             f"the frozen trunk of the demo run's backbone ({photo.get('backbone', '_(to be measured)_')}, "
             f"{_number(photo.get('image_size'), '{:d}')} px). *Training and embed*: no photo is decoded (decoding "
             "every photo again would dominate them; the trunk rows show what that costs): the demo run's cached "
             f"trunk features, repeated to the synthetic photos and jittered ({TRUNK_JITTER:.0%} of their standard deviation), "
             "written in the cache format under the key training looks up. Training runs exactly one epoch "
             "(`max_epochs` 1: one training and one validation pass over the listings, no early stop), so "
             "every size does the same work per listing. *Steps after embed*: the demo run's photo embeddings "
             "(jittered), written chunk by chunk into memory-mapped `.npy` files; they read only these files, "
             "so they see what a real catalogue of that size would give them.", "",
             "**Columns.** `wall` is the subprocess (Python start-up and imports included); `step` the step "
             "itself; `peak RSS` the kernel's high-water mark (`VmHWM`), which also counts the pages of files a "
             "step maps (Annoy's index file during the index step's on-disk build; the steps read their large "
             "files with plain reads, `NpyRows`, whose pages stay out of the process); `peak anon` the anonymous "
             "memory polled every 20 ms, what the step really needs; `run` the invocation that measured the row. "
             "For `open`, `step` is the first render of the Overview page in a fresh process whose app modules "
             "are already imported, as in a started server (the run's check, opening it, the page). "
             "`streaming` is the product's path; `in-memory` the path of before issue 12, run only where it "
             "fits: the trunk pass's features gathered in one array and saved with `np.save`; training and embed "
             "with the whole trunk cache in memory (embed computing every photo embedding in one array); arrays "
             "read whole, Annoy built in memory then saved, UMAP on every point, probes trained on every "
             "labelled listing, every file hashed when the app starts. The product keeps trunk caches under "
             "2 GiB in memory and those measured here are smaller, so the streaming training child lowers that "
             "threshold (`TRUNK_IN_MEMORY_MAX_BYTES`) to 0 to measure its path for large caches (rows read from the "
             "cache file per batch). The streaming index, project and predict are the build's own steps.", ""]
    if results:
        # numbered in date order (labels start with the date)
        runs = {label: i + 1 for i, label in enumerate(sorted(pd.unique(rows["measured"])))}
        table = rows.assign(run=rows["measured"].map(runs))[
            ["listings", "photos", "step", "variant", "wall_seconds", "step_seconds", "peak_rss_gb", "peak_anon_gb",
             "run"]].rename(columns={"wall_seconds": "wall (s)", "step_seconds": "step (s)",
                                     "peak_rss_gb": "peak RSS (GB)", "peak_anon_gb": "peak anon (GB)"})
        lines += ["## Time and memory per step", "", table.to_markdown(index=False, floatfmt=".2f", intfmt=","), "",
                  "Runs:", ""] + [f"{i}. {label}" for label, i in runs.items()] + [""]
    else:
        lines += ["## Time and memory per step", "", "_(to be measured)_", ""]
    lines += ["## At the largest size", "",
              f"The issue's {RSS_BUDGET_GB:.0f} GB budget is for the steps after embed at 500k listings; the trunk "
              "pass, training and embed are measured at 10k and 50k.", ""]
    lines += after_embed_lines(rows if results else None) + photo_step_lines(rows if results else None)
    lines += ["## Slope and extrapolation", "",
              "A power law `value = a * listings^slope` fitted per step over the sizes measured (slope 1: linear). "
              f"Extrapolated to the paper's catalogue ({PAPER_LISTINGS:,} listings, ~10M photos) and to "
              f"{TARGET_PHOTOS:,} photos at this benchmark's {_number(p, '{:d}')} photos per listing "
              "(more listings; the trunk pass, training, embed and predict read photos in proportion). "
              "Extrapolations beyond the sizes measured are estimates, not measurements; the trunk pass, training "
              "and embed are fitted through their two sizes only; a step measured at one size only is left out.", ""]
    slopes = scaling_table(rows, p) if results else pd.DataFrame()
    if len(slopes):
        lines += [slopes.to_markdown(index=False, floatfmt=".2f"), ""]
    elif results:
        lines += ["_(every step was measured at one size only: no slope)_", ""]
    else:
        lines += ["_(to be measured)_", ""]
    lines += ["![time and peak anonymous memory against listings](scale.png)", ""]
    return "\n".join(lines)


def plot(rows: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    for (step, variant), group in rows.groupby(["step", "variant"], sort=False):
        style = "-o" if variant == "streaming" else "--x"
        axes[0].plot(group["listings"], group["step_seconds"], style, label=f"{step} ({variant})")
        axes[1].plot(group["listings"], group["peak_anon_gb"], style, label=f"{step} ({variant})")
    for axis, label in zip(axes, ("time of the step (s)", "peak anonymous memory (GB)"), strict=True):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("listings")
        axis.set_ylabel(label)
        axis.grid(True, which="both", alpha=0.3)
    axes[1].axhline(RSS_BUDGET_GB, color="grey", linewidth=0.8)
    axes[0].legend(fontsize=6, ncol=2)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    plt.close(figure)


def quick_config(config: BuildConfig) -> BuildConfig:
    """Small thresholds, so that a tiny run takes the sampled paths."""
    return replace(config, index=replace(config.index, n_trees=5),
                   projection=replace(config.projection, n_neighbors=5, fit_sample=100, transform_batch=60),
                   predict=replace(config.predict, probe_sample=60))


def main() -> None:
    from gallery_core.data.photos import TRUNK_CHUNK_SIZE

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", help=f"listings per run (default {DEFAULT_SIZES})")
    parser.add_argument("--source", type=Path, default=REPO_ROOT / "artifacts" / "demo",
                        help="the built run whose listings, photos, trunk cache and embeddings the synthetic runs "
                             "are made from")
    parser.add_argument("--photos-per-listing", type=int, default=4,
                        help="at most this many photos per listing (disk: 500k x 4 x 1280 floats = 10 GB)")
    parser.add_argument("--baseline-max", type=int, default=50_000,
                        help="largest size at which the in-memory path of before issue 12 is run too")
    parser.add_argument("--photo-max", type=int, default=50_000,
                        help="largest size at which the trunk pass, training and embed are run")
    parser.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS))
    parser.add_argument("--merge", type=Path, metavar="PREVIOUS.json",
                        help="keep the rows of this earlier results file that this invocation does not measure")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "gallery-core-bench-scale")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "benchmarks" / "scale.md")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, thresholds and chunks: a check that it runs")
    parser.add_argument("--keep", action="store_true", help="keep the synthetic runs (default: removed)")
    parser.add_argument("--template", action="store_true", help="write the document with placeholders only")
    # internal: one step in this process (what the parent runs in a subprocess)
    parser.add_argument("--step", choices=STEPS, help=argparse.SUPPRESS)
    parser.add_argument("--run", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--variant", choices=VARIANTS, default="streaming", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        child_main(args.step, args.run, args.variant)
        return
    if args.template:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(markdown_report(None))
        print(f"written to {args.out}")
        return
    previous = read_previous(args.merge, args.photos_per_listing) if args.merge is not None else None

    from gallery_core.artifacts.run import Run

    sizes = args.sizes or (QUICK_SIZES if args.quick else DEFAULT_SIZES)
    args.source = args.source.resolve()  # recorded in the synthetic runs, read again by their steps
    config = Run(args.source, verify=False, steps=("train", "embed")).config
    if args.quick:
        config = quick_config(config)
    chunk_size = QUICK_CHUNK if args.quick else TRUNK_CHUNK_SIZE
    machine = f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}"
    measured = f"{time.strftime('%Y-%m-%d')}: `{' '.join([COMMAND, *map(shlex.quote, sys.argv[1:])])}`"
    rows = []
    for n in sorted(sizes):
        steps = [s for s in STEPS if s in args.steps and (s not in PHOTO_STEPS or n <= args.photo_max)]
        if not steps:
            continue
        run_dir = args.work / f"run-{n}"
        started = time.perf_counter()
        facts = make_scale_run(args.source, run_dir, n, args.photos_per_listing, config, chunk_size)
        if "train" in steps or "embed" in steps:
            make_trunk_cache(run_dir)
        print(f"{n:,} listings: synthetic run made in {time.perf_counter() - started:.0f} s "
              f"({facts['photos']:,} photos, {facts['dim']}-d)", flush=True)
        for step in steps:
            if step == "open":
                complete_run(run_dir, args.steps)
            for variant in VARIANTS if n <= args.baseline_max else VARIANTS[:1]:
                row = facts | measure(step, run_dir, variant) | {"measured": measured}
                if not args.keep:
                    shutil.rmtree(step_folder(run_dir, step, variant), ignore_errors=True)
                rows.append(row)
                print(f"  {step:8s} {variant:10s} step {row['step_seconds']:8.2f} s  wall {row['wall_seconds']:8.2f} s  "
                      f"peak RSS {row['peak_rss_gb']:6.2f} GB  peak anon {row['peak_anon_gb']:6.2f} GB", flush=True)
        if not args.keep:
            shutil.rmtree(run_dir)
    if not rows:
        raise SystemExit("nothing measured: every step asked for is a photo step above --photo-max")
    table = pd.DataFrame(rows)
    print(table[["listings", "step", "variant", "step_seconds", "wall_seconds", "peak_rss_gb",
                 "peak_anon_gb"]].to_string(index=False))
    if previous is not None:
        rows = merge_rows(rows, previous)
    results = {"machine": machine, "photos_per_listing": args.photos_per_listing,
               "photo_config": {"backbone": config.model.backbone, "image_size": config.model.image_size,
                                "trainable_stages": config.model.trainable_stages, "chunk_size": chunk_size},
               "sizes": sorted({int(r["listings"]) for r in rows}), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out.with_suffix(".json"), results)
    plot(pd.DataFrame(rows), args.out.with_suffix(".png"))
    with atomic_path(args.out) as tmp:
        tmp.write_text(markdown_report(results))
    print(f"written to {args.out} (+ .json, .png)")


if __name__ == "__main__":
    try:
        main()
    except UsageError as err:  # bad input: one line, no traceback
        raise SystemExit(f"bench_scale: {err}") from None
