"""The scale benchmark's steps (``bench_scale.py``), each run in a subprocess of its own (the script's
internal ``--step``), and their measurement: wall time, the step's own time, peak RSS and peak anonymous
memory. What each step and variant does: ``bench_scale.py``'s docstring.
"""

from __future__ import annotations

import json
import os
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
from scale_synthetic import PHOTO_STEPS, step_folder, synthetic_catalogue

from gallery_core.artifacts.store import RunPaths, atomic_path, hash_key, record_step, write_parquet
from gallery_core.config import BuildConfig
from gallery_core.data.tasks import TaskSpec
from gallery_core.vectors import l2_normalise

# the script whose --step runs one step (its sys.path setup lets the app's ui/ package be imported)
SCRIPT = Path(__file__).resolve().parent / "bench_scale.py"
REPO_ROOT = SCRIPT.parent.parent
POLL_S = 0.02
SYNTHETIC_RUN_NAME = "scale"


def run_photo_step(step: str, run_dir: Path, variant: str, config: BuildConfig, synthetic: dict[str, Any],
                   ) -> dict[str, Any]:
    """The trunk pass, training or embed on the synthetic run (see bench_scale.py's docstring); returns the step's
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
    from gallery_core.search.whitening import fit_retrieval_whitening

    is_train = ~data.catalogue.listings["listing_id"].isin(set(checkpoint["val_listing_ids"])).to_numpy()
    whitening = fit_retrieval_whitening(photo_embeddings, np.repeat(is_train, sizes), listing_index,
                                        config.train.seed, config.embed)
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
    """A step after embed as before issue 12 (see bench_scale.py's docstring); writes beside the run's own files."""
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
    command = [sys.executable, str(SCRIPT), "--step", step, "--run", str(run_dir),
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

