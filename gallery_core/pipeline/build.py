"""train -> embed -> index -> project -> predict, each step skipped when its inputs are unchanged.

A step's input key covers its config section, the catalogue fingerprint where it reads the
catalogue, and the checksums of the upstream files it reads (see ``gallery_core.artifacts.store``).
A step is skipped only when its key is unchanged and ``store.check_step`` finds its files intact, the
judgement loading makes: a file that loading refuses (changed, truncated, from another run) makes the
build redo its step.

Under torchrun (``torchrun --nproc-per-node N -m gallery_core build ...``) every rank runs the train step
(DDP, ``gallery_core.training.distributed``); rank 0 alone judges and records steps, and runs the steps
after training while the other ranks return once training is done, having written nothing.

Interruptions: every file is written atomically and a step is recorded only after all its files
exist, so a killed build redoes at most the step it was in; training resumes from ``last.pt`` after its
last finished epoch, which is removed only once the manifest records the train step.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from gallery_core.artifacts.lock import run_lock
from gallery_core.artifacts.npy_rows import NpyRows
from gallery_core.artifacts.store import (
    STEPS,
    RunPaths,
    UnreadableManifestError,
    read_manifest,
    record_step,
    set_aside_manifest,
    step_input_key,
    step_problems,
    write_json,
    write_parquet,
)
from gallery_core.config import BuildConfig
from gallery_core.data.catalogue import Catalogue, load_catalogue
from gallery_core.engine.execution import Execution
from gallery_core.errors import UsageError
from gallery_core.models.checkpoint import load_checkpoint
from gallery_core.pipeline.embed import embed
from gallery_core.pipeline.projection import fit_projection
from gallery_core.search.index import write_index
from gallery_core.training import distributed
from gallery_core.training.loop import train

logger = logging.getLogger(__name__)


def config_for_run(run_dir: str | Path, config: BuildConfig | None = None) -> BuildConfig:
    """The given config, else the one the run was built with, else the defaults (not yet validated, so
    that a size left to the backbone follows a backbone chosen later; ``run_steps`` validates)."""
    if config is not None:
        return config.validate()
    manifest = read_manifest(run_dir)
    if manifest and "config" in manifest:
        return BuildConfig.from_dict(manifest["config"])
    return BuildConfig()


def _step_key(run_dir: Path, step: str, config: BuildConfig, catalogue: Catalogue | None) -> str:
    parts = {
        "train": (config.model, config.train),
        "embed": config.embed,
        "index": (config.index, config.train.seed),
        "project": (config.projection, config.train.seed),
        "predict": (config.predict, config.train.seed),
    }[step]
    fingerprint = catalogue.fingerprint if catalogue is not None and step in ("train", "embed") else None
    return step_input_key(run_dir, step, parts, fingerprint)


def run_steps(out: str | Path, steps: Sequence[str] = STEPS, catalogue_dir: str | Path | None = None,
              config: BuildConfig | None = None, force: bool = False, device: str | None = None,
              progress: bool = True, execution: Execution | None = None, wait: bool = False) -> dict[str, Any]:
    """Run the named steps in pipeline order; returns the manifest. ``execution``: how the trunk pass and the
    embed step run (engine, Ray cluster, chunk size): not part of their input keys, the files are the same.
    One writer per run folder: ``LockedError`` naming the holder when another process is building it, unless
    ``wait`` (then it starts when that one ends; ``gallery_core.artifacts.lock``)."""
    with run_lock(out, wait=wait):
        return _run_steps(out, steps, catalogue_dir, config, force, device, progress, execution)


def _run_steps(out: str | Path, steps: Sequence[str], catalogue_dir: str | Path | None, config: BuildConfig | None,
               force: bool, device: str | None, progress: bool, execution: Execution | None) -> dict[str, Any]:
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        raise UsageError(f"unknown steps {unknown}; the steps are {list(STEPS)}")
    run_dir = Path(out)
    distributed.start(device)  # under torchrun: join the other ranks (a no-op otherwise)
    main = distributed.is_main_process()
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        _check_manifest(run_dir, force)
    config = config_for_run(run_dir, config).validate()
    step_functions = STEP_FUNCTIONS | {step: functools.partial(STEP_FUNCTIONS[step], execution=execution)
                                       for step in ("train", "embed")}
    catalogue = None
    if any(s in ("train", "embed") for s in steps):
        if catalogue_dir is None:
            raise UsageError("the train and embed steps need --catalogue")
        catalogue = load_catalogue(catalogue_dir)
        logger.info(f"catalogue {catalogue.root}: {len(catalogue.listings)} listings, {len(catalogue.photos)} photos, "
            f"{len(catalogue.tasks)} tasks" + (f"; {catalogue.report.summary()}" if catalogue.report.skipped_photos
                                                or catalogue.report.empty_listings else ""))
    for step in (s for s in STEPS if s in steps):
        if step != "train":  # training is done: under torchrun rank 0 builds the rest alone, the others stop
            distributed.stop()
            if not main:
                return {}
        key = _step_key(run_dir, step, config, catalogue)
        problems = None if force or not main else step_problems(run_dir, step, key)
        problems = distributed.broadcast_object(problems)  # the other ranks follow rank 0's judgement
        if problems == []:
            logger.info(f"[{step}] up to date, skipped")
            if step == "train" and main:  # a build killed between recording the step and removing it left it behind
                RunPaths(run_dir).resume_checkpoint.unlink(missing_ok=True)
            continue
        if problems:  # recorded with these inputs, but its files are not the ones recorded: repair
            logger.warning(f"[{step}] redoing the step: {problems[0]}")
        logger.info(f"[{step}] running")
        started = time.perf_counter()
        info, base = step_functions[step](run_dir, config, catalogue, device, progress)
        seconds = time.perf_counter() - started
        if not main:  # a rank other than 0 trained its share; rank 0 records the step
            continue
        record_step(run_dir, step, key, seconds, info, base)
        if step == "train":  # only now: a kill before the record resumes training from it
            RunPaths(run_dir).resume_checkpoint.unlink(missing_ok=True)
        logger.info(f"[{step}] done in {seconds:.1f}s")
    distributed.stop()
    if not main:
        return {}
    manifest = read_manifest(run_dir)
    assert manifest is not None
    return manifest


def _check_manifest(run_dir: Path, force: bool) -> None:
    """An unusable manifest stops the build with how to recover; with ``force`` it is set aside and every
    step is redone. Not without ``force``: the manifest is all that says which files belong to which
    build, and redoing every step (training included) should be asked for, not a side effect of a bad file."""
    try:
        read_manifest(run_dir)
    except UnreadableManifestError as err:
        if not force:
            raise
        aside = set_aside_manifest(run_dir)
        logger.warning(f"{err}\n--force: moved it to {aside.name}; every step is redone")


# --- the steps: each returns (info for its manifest record, manifest fields to set) ---

def _train_step(run_dir: Path, config: BuildConfig, catalogue: Catalogue, device: str | None,
                progress: bool, execution: Execution | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    # last.pt stays until run_steps has recorded the step: a kill in between still resumes, not restarts.
    result = train(catalogue, config, run_dir, device=device, progress=progress, keep_resume=True,
                   execution=execution)
    if not distributed.is_main_process():  # under torchrun: rank 0 records the step
        return {}, {}
    trained = result.catalogue
    base = {
        "config": config.to_dict(),
        "catalogue": {"root": str(catalogue.root), "fingerprint": catalogue.fingerprint,
                      "n_listings": len(trained.listings), "n_photos": len(trained.photos),
                      "skipped": trained.report.to_dict() | {"skipped_photos": trained.report.skipped_photos[:50]}},
        "tasks": [t.to_dict() for t in trained.tasks],
        "holdout": list(catalogue.holdout),
    }
    checkpoint = load_checkpoint(RunPaths(run_dir).checkpoint)[1]
    base["backbone"] = checkpoint["backbone"]
    # Wall-clock time per epoch lives here, not in model.pt or train_log.jsonl, so that those files are the
    # same bytes for the same training however long it took (and whether or not it was interrupted).
    return {"best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
            "epoch_seconds": result.epoch_seconds}, base


def _embed_step(run_dir: Path, config: BuildConfig, catalogue: Catalogue, device: str | None,
                progress: bool, execution: Execution | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    result = embed(catalogue, run_dir, device=device, progress=progress, embed_config=config.embed,
                   execution=execution)
    return {"n_photos": len(result.photo_table), "n_listings": len(result.listing_table),
            "dim": int(result.listing_embeddings.shape[1]),
            "new_task_dim": int(result.new_task_embeddings.shape[1]),
            "new_task_features": config.embed.new_task_features}, {}


def _index_step(run_dir: Path, config: BuildConfig, catalogue: Catalogue | None, device: str | None,
                progress: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    paths = RunPaths(run_dir)
    # read in chunks and built on disk: at 500k listings neither the array nor Annoy's copy is held in memory
    embeddings = NpyRows(paths.listing_embeddings)  # (L, D)
    write_index(embeddings, config.index, paths.index, seed=config.train.seed)
    return {"n_items": len(embeddings), "n_trees": config.index.n_trees, "dim": int(embeddings.shape[1])}, \
        {"config": config.to_dict()}


def _project_step(run_dir: Path, config: BuildConfig, catalogue: Catalogue | None, device: str | None,
                  progress: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    paths = RunPaths(run_dir)
    embeddings = NpyRows(paths.listing_embeddings)  # (L, D), read a batch at a time above fit_sample
    listing_ids = pd.read_parquet(paths.listing_table, columns=["listing_id"])["listing_id"]
    coords = fit_projection(embeddings, config.projection, seed=config.train.seed, progress=progress)
    write_parquet(paths.umap, pd.DataFrame({"listing_id": listing_ids, "x": coords[:, 0], "y": coords[:, 1]}))
    return {"n_points": len(coords)}, {"config": config.to_dict()}


def _predict_step(run_dir: Path, config: BuildConfig, catalogue: Catalogue | None, device: str | None,
                  progress: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    # Imported here: scikit-learn takes seconds to import and only this step needs it.
    from gallery_core.pipeline.predict import metrics_table, predict_all, small_split_warning

    paths = RunPaths(run_dir)
    model, checkpoint = load_checkpoint(paths.checkpoint, device="cpu")
    listings = pd.read_parquet(paths.listing_table)
    photo_table = pd.read_parquet(paths.photo_table, columns=["listing_index"])
    predictions, metrics = predict_all(
        model.heads, model.heads.tasks, listings, NpyRows(paths.photo_embeddings),
        photo_table["listing_index"].to_numpy(), NpyRows(paths.new_task_embeddings), config.predict,
        seed=config.train.seed, progress=progress)
    write_parquet(paths.predictions, predictions)
    write_json(paths.metrics, {"split": "val", "n_val_listings": int((listings["split"] == "val").sum()),
                               "tasks": metrics})
    table = metrics_table(metrics)
    logger.info("validation metrics (model vs trivial baseline):\n" + table.to_string(index=False, float_format="%.4f"))
    if (warning := small_split_warning(table)) is not None:
        logger.warning(warning)
    return {"tasks_beating_baseline": int(table["beats_baseline"].sum()), "n_tasks": len(table)}, \
        {"config": config.to_dict()}


STEP_FUNCTIONS = {
    "train": _train_step,
    "embed": _embed_step,
    "index": _index_step,
    "project": _project_step,
    "predict": _predict_step,
}
