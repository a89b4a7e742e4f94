"""Training the gallery encoder by multi-task learning.

Adam, a train/validation split by listing, early stopping on the validation loss, a checkpoint that
carries its config (``model.pt``, see ``gallery_core.models.checkpoint``), and resume from ``last.pt``
after an interruption. The frozen trunk's features are computed once and reused by every epoch (see
``gallery_core.training.data``).

Resuming is exact on the CPU: ``last.pt`` (written after every epoch) holds the model, the optimizer, the
loss weighting, the early-stopping state and every random generator's state (torch, CUDA, numpy, Python,
the batch-order generator), and each epoch draws its batch order and its objectives' samples from
generators seeded by the epoch number, so the sampler's position is simply "the next epoch's first
batch". A resumed run therefore trains the same weights as an uninterrupted one, bit for bit, and
``model.pt`` and ``train_log.jsonl`` are the same bytes (wall-clock times live in the build's manifest).

The visual-search objectives (``TrainConfig.triplet_weight``, ``vae_weight``, ``augment``) are optional
and off by default: ``gallery_core.training.objectives`` holds what they need and ``run_epoch`` adds their
losses to the weighting as further named tasks ("triplet", "vae").

Under torchrun the same loop trains with DistributedDataParallel (``gallery_core.training.distributed``):
each rank runs its share of every batch through ``TrainStep`` (the model and the weighting, wrapped in DDP
together), and only rank 0 writes. Without torchrun nothing changes, bit for bit.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from gallery_core.artifacts.store import RunPaths, atomic_path, write_json
from gallery_core.config import SCHEMA_VERSION, BuildConfig
from gallery_core.data.catalogue import Catalogue
from gallery_core.data.photos import trunk_cache_key
from gallery_core.engine.execution import Execution
from gallery_core.models.checkpoint import CHECKPOINT_FORMAT, build_model, save_checkpoint, vae_image_size
from gallery_core.models.device import autocast_enabled, make_reproducible, pick_device
from gallery_core.models.encoder import GalleryModel, task_loss
from gallery_core.training import distributed
from gallery_core.training.data import (
    GalleryData,
    label_tensors,
    prepare_data,
    regression_stats,
    split_listings,
)
from gallery_core.training.finetune import L2SP, param_groups, set_probe_phase, small_catalogue_check
from gallery_core.training.objectives import (
    Objectives,
    objective_weights,
    objectives_batch,
    prepare_objectives,
)
from gallery_core.training.wise import finish_with_wise
from gallery_core.weighting import LossWeighting, PseudoUniformWeighting, create_weighting

logger = logging.getLogger(__name__)

# --- one pass over data ---

@dataclass
class EpochStats:
    total: float
    task_losses: dict[str, float]

    def objective(self, scale: PseudoUniformWeighting) -> float:
        """Validation objective for early stopping: pseudo-uniformly scaled sum of the task losses.
        It does not depend on learned weights, so epochs stay comparable under any weighting."""
        weights = scale.weights()
        return float(sum(weights[name] * loss for name, loss in self.task_losses.items()))


class TrainStep(nn.Module):
    """The model and its loss weighting as one module, whose forward is one batch's weighted loss.

    It is what DDP wraps (``distributed.wrap``): DDP averages the gradients of the parameters a forward
    used, so one backward all-reduces the model's and the learned task weights' (uncertainty weighting)
    together, and every rank keeps the same weights. Without DDP it is called as it is.
    """

    def __init__(self, model: GalleryModel, weighting: LossWeighting):
        super().__init__()
        self.model = model
        self.weighting = weighting

    def forward(self, batch_losses: Callable[[GalleryModel], dict[str, tuple[torch.Tensor, int]]],
                ) -> tuple[torch.Tensor | None, dict[str, tuple[torch.Tensor, int]]]:
        """``batch_losses(model)``: each task's (and objective's) mean loss over this rank's listings of the
        batch that have its label, and how many there were. Returns the weighted total (None when no
        listing of the whole batch has a label) and those losses."""
        losses = batch_losses(self.model)
        if not distributed.is_distributed():
            present = {name: loss for name, (loss, n) in losses.items() if n}
            return (self.weighting(present) if present else None), losses
        # A rank's loss is a mean over its own labelled listings, and their numbers differ between ranks.
        # Scaled by world * n_rank / n_batch, the ranks' average gradient (what DDP computes) is the gradient
        # of the mean over all the batch's labelled listings, as with one process. Every rank has the same
        # names in the same order (every head, every objective), so the counts add up element-wise.
        world = distributed.world_size()
        n_batch = distributed.all_reduce_sum([n for _, n in losses.values()])
        scaled = {name: loss * (world * n / total)
                  for (name, (loss, n)), total in zip(losses.items(), n_batch, strict=True) if total}
        return (self.weighting(scaled) if scaled else None), losses


def batch_losses(model: GalleryModel, data: GalleryData, idx: np.ndarray, labels: dict[str, torch.Tensor],
                 device: torch.device, objectives: Objectives | None, training: bool, epoch: int,
                 rng: np.random.Generator | None, counted: bool = True) -> dict[str, tuple[torch.Tensor, int]]:
    """The listings ``idx`` through the model -> {task or objective: (mean loss over its labelled listings,
    their number)}. ``counted=False`` (a rank with no listings of its own in a batch) counts none of them."""
    use_amp = autocast_enabled(device)
    extra: dict[str, tuple[torch.Tensor, int]] = {}
    if objectives is None:
        inputs, gallery_ids, from_trunk = data.batch(idx, device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            _, outputs = model(inputs, gallery_ids, len(idx), from_trunk)
    else:
        outputs, extra = objectives_batch(model, data, idx, objectives, training, epoch, rng, device, use_amp)
    losses = {name: task_loss(model.heads.heads[name].task, head_out, labels[name][idx].to(device))
              for name, head_out in outputs.items()}
    losses |= extra
    return losses if counted else {name: (loss, 0) for name, (loss, _) in losses.items()}


def run_epoch(model: GalleryModel, weighting: LossWeighting, data: GalleryData, listing_idx: np.ndarray,
              labels: dict[str, torch.Tensor], batch_size: int, device: torch.device,
              optimizer: torch.optim.Optimizer | None = None, generator: torch.Generator | None = None,
              progress: bool = False, desc: str = "", objectives: Objectives | None = None,
              epoch: int = 0, penalty: Callable[[], torch.Tensor] | None = None,
              step: nn.Module | None = None) -> EpochStats:
    """Train (with an optimizer) or evaluate (without) over the given listings.

    ``objectives`` adds the triplet / VAE losses (and augmentation when training); ``epoch`` seeds
    their sampling, so an epoch is reproducible on resume (evaluation always samples alike).
    ``penalty`` (training only) is added to each batch's weighted loss, e.g. ``L2SP``.
    ``step``: the ``TrainStep`` of ``model`` and ``weighting`` to train through (DDP-wrapped under torchrun);
    by default a plain one. Under DDP each rank runs its share of every batch of ``batch_size`` listings
    (``distributed.batch_shard``) and the returned statistics are those of all the listings.
    """
    training = optimizer is not None
    step = step if step is not None else TrainStep(model, weighting)
    step.train(training)
    if training:
        listing_idx = listing_idx[torch.randperm(len(listing_idx), generator=generator).numpy()]
    names = list(labels) + (objectives.names if objectives is not None else [])
    sums = dict.fromkeys(names, 0.0)
    counts = dict.fromkeys(names, 0)
    rng = None
    if objectives is not None:  # under DDP each rank samples its own triplets and latents
        own = [distributed.rank()] if distributed.is_distributed() else []
        rng = np.random.default_rng([objectives.seed, epoch if training else 0, *own])
    total, n_batches = 0.0, 0
    batches = range(0, len(listing_idx), batch_size)
    with torch.set_grad_enabled(training):
        for start in tqdm(batches, desc=desc, leave=False, disable=not progress):
            idx, counted = distributed.batch_shard(listing_idx[start:start + batch_size])
            batch_total, losses = step(partial(batch_losses, data=data, idx=idx, labels=labels, device=device,
                                               objectives=objectives, training=training, epoch=epoch, rng=rng,
                                               counted=counted))
            for name, (loss, n) in losses.items():
                if n:
                    sums[name] += float(loss.detach()) * n
                    counts[name] += n
            if batch_total is None:  # no listing of the batch has any label (on any rank)
                continue
            if training and penalty is not None:  # a regulariser on the weights (L2-SP), training only
                batch_total = batch_total + penalty().to(batch_total.device)
            if training:
                optimizer.zero_grad(set_to_none=True)
                batch_total.backward()
                optimizer.step()
            total += float(batch_total.detach())
            n_batches += 1
    if distributed.is_distributed():  # every rank's sums and counts; the batch totals' mean over ranks
        summed = distributed.all_reduce_sum([*sums.values(), *counts.values(), total])
        sums = dict(zip(names, summed[:len(names)].tolist(), strict=True))
        counts = dict(zip(names, summed[len(names):-1].tolist(), strict=True))
        total = float(summed[-1]) / distributed.world_size()
    task_losses = {name: sums[name] / counts[name] for name in names if counts[name]}
    return EpochStats(total / max(n_batches, 1), task_losses)


# --- the training run ---

@dataclass
class TrainResult:
    checkpoint_path: Path
    best_epoch: int
    epochs_run: int
    history: list[dict[str, Any]]
    catalogue: Catalogue  # as trained on (without undecodable photos)
    epoch_seconds: list[float] = field(default_factory=list)  # wall-clock time of each epoch in ``history``


def train(catalogue: Catalogue, config: BuildConfig, run_dir: str | Path, resume: bool = True,
          device: str | None = None, progress: bool = True,
          cache_dir: str | Path | None = None, keep_resume: bool = False,
          execution: Execution | None = None) -> TrainResult:
    """Train the encoder and heads on ``catalogue``; write ``model.pt`` (best epoch) and ``train_log.jsonl``.

    ``execution``: how a missing frozen-trunk cache is computed (this process, or the Ray engine).

    ``cache_dir`` (default ``<run_dir>/cache``) holds the frozen-trunk features; pointing it at another
    run's cache lets a model trained on a subset of the same catalogue reuse them. ``keep_resume`` leaves
    ``last.pt`` for the caller to remove once it has recorded the result (the build does, after its
    manifest records the step); by default it is removed when training ends.

    Under torchrun (a process group started by ``distributed.start``) every rank calls this: each trains on
    its share of every batch through DDP, and rank 0 alone writes files, logs and shows progress.
    """
    config.validate()
    main = distributed.is_main_process()
    progress = progress and main
    paths = RunPaths(Path(run_dir))
    if main:
        paths.root.mkdir(parents=True, exist_ok=True)
    dev = distributed.rank_device(pick_device(device))
    make_reproducible(dev, config.train.seed)

    model = build_model(config.model, catalogue.tasks, vae_image_size=vae_image_size(config)).to(dev)
    cache_key = trunk_cache_key(catalogue.fingerprint, model.encoder.backbone, config.model.image_size)
    cache_dir = Path(cache_dir) if cache_dir else paths.cache_dir
    # Augmentation changes the pixels every epoch, so it cannot reuse the frozen trunk's cached output.
    # Under DDP rank 0 computes the trunk cache while the others wait, then they read it.
    with distributed.main_process_first():
        data = prepare_data(catalogue, model, config.model, cache_dir, cache_key,
                            config.train.cache_trunk and not config.train.augment, dev, progress,
                            execution=execution)
    catalogue = data.catalogue
    if main:
        write_json(paths.catalogue_report, catalogue.report.to_dict())
    if catalogue.report.skipped_photos or catalogue.report.empty_listings:
        logger.info(f"catalogue: {catalogue.report.summary()} (details in {paths.catalogue_report})")

    labels = label_tensors(catalogue)
    is_val = split_listings(catalogue.listings["listing_id"].tolist(), config.train.val_fraction, config.train.seed)
    train_idx, val_idx = np.flatnonzero(~is_val), np.flatnonzero(is_val)
    stats = regression_stats(catalogue, labels, train_idx)
    for name, (mean, var) in stats.items():
        model.heads.set_label_scale(name, mean, math.sqrt(var))
    variances = {name: var for name, (_, var) in stats.items()}
    extra = objective_weights(config.train, n_tasks=len(catalogue.tasks))
    objectives = prepare_objectives(config, data, train_idx, val_idx, cache_dir)
    weighting = create_weighting(config.train.weighting, catalogue.tasks, variances, extra).to(dev)
    scale = PseudoUniformWeighting(catalogue.tasks, variances, extra)
    finetune = small_catalogue_check(model, len(train_idx), len(val_idx), config.train)
    # Anchored before any training or resume: w0 are the pretrained weights.
    l2sp = L2SP(model.encoder.backbone.top, config.train.l2sp_weight) if config.train.l2sp_weight > 0 else None
    optimizer = torch.optim.Adam(param_groups(model, weighting, config.train))

    state = {"epoch": 0, "best_val": math.inf, "best_epoch": 0, "bad_epochs": 0, "history": []}
    epoch_seconds: list[float] = []
    generator = torch.Generator().manual_seed(config.train.seed)
    base = {
        "format": CHECKPOINT_FORMAT, "schema_version": SCHEMA_VERSION, "config": config.to_dict(),
        "tasks": [t.to_dict() for t in catalogue.tasks],
        "backbone": {"name": config.model.backbone, "weight_source": model.encoder.backbone.weight_source},
        "catalogue_fingerprint": catalogue.fingerprint, "trunk_cache_key": cache_key,
        "val_listing_ids": catalogue.listings["listing_id"].to_numpy()[val_idx].tolist(),
        "regression_stats": {k: list(v) for k, v in stats.items()},
        "backbone_finetuned": finetune,
    }
    if objectives is not None and objectives.train_levels is not None:
        base["triplet_mining"] = objectives.train_levels.summary()
    if resume and paths.resume_checkpoint.is_file():  # under DDP every rank loads it
        saved = torch.load(paths.resume_checkpoint, map_location=dev, weights_only=True)
        if _resumable(saved["config"], base["config"]) and saved["catalogue_fingerprint"] == catalogue.fingerprint:
            model.load_state_dict(saved["model"])
            weighting.load_state_dict(saved["weighting"])
            optimizer.load_state_dict(saved["optimizer"])
            state = {k: saved[k] for k in state}
            epoch_seconds = list(saved.get("epoch_seconds", []))
            if "rng" in saved:
                _set_rng_state(saved["rng"], generator)
            logger.info(f"resuming after epoch {state['epoch']} from {paths.resume_checkpoint}")
        else:
            logger.info(f"ignoring {paths.resume_checkpoint}: it was made with another config or catalogue")
    lp_epochs = config.train.lp_epochs if finetune else 0  # a backbone that never fine-tunes has no LP phase
    step = distributed.wrap(TrainStep(model, weighting), dev, find_unused=lp_epochs > 0)  # DDP under torchrun

    log_lines = [json.dumps(h) for h in state["history"]]
    # A run that had already stopped early (killed before it was recorded) trains no further epoch.
    last_epoch = state["epoch"] if state["bad_epochs"] >= config.train.patience else config.train.max_epochs
    epochs = tqdm(range(state["epoch"] + 1, last_epoch + 1), desc="training", unit="epoch",
                  disable=not progress, initial=state["epoch"], total=config.train.max_epochs)
    for epoch in epochs:
        generator.manual_seed(config.train.seed * 100_003 + epoch)  # resume-safe: the order depends on the epoch
        if objectives is not None and objectives.thumbnails is not None:
            torch.manual_seed(config.train.seed * 100_003 + epoch)  # the VAE's latent samples, resume-safe too
        if lp_epochs:
            set_probe_phase(model, epoch <= lp_epochs, config.model.freeze_batchnorm)
        started = time.perf_counter()
        train_stats = run_epoch(model, weighting, data, train_idx, labels, config.train.batch_size, dev,
                                optimizer, generator, progress, desc=f"epoch {epoch}", objectives=objectives,
                                epoch=epoch, penalty=l2sp, step=step)
        distributed.broadcast_buffers(model)  # every rank validates the model rank 0 saves
        val_stats = run_epoch(model, weighting, data, val_idx, labels, config.train.batch_size, dev,
                              objectives=objectives)
        val_objective = val_stats.objective(scale)
        seconds = round(time.perf_counter() - started, 2)
        epoch_seconds.append(seconds)
        entry = {  # no wall-clock time: the same training gives the same log, bytes included
            "epoch": epoch, "train_loss": train_stats.total, "val_objective": val_objective,
            "train_task_losses": train_stats.task_losses, "val_task_losses": val_stats.task_losses,
            "task_weights": weighting.weights(),
        }
        state["history"].append(entry)
        log_lines.append(json.dumps(entry))
        improved = val_objective < state["best_val"] - 1e-6
        if improved:
            state.update(best_val=val_objective, best_epoch=epoch, bad_epochs=0)
            if main:
                save_checkpoint(paths.checkpoint, {**base, **state, "epoch": epoch, "model": model.state_dict(),
                                                      "weighting": weighting.state_dict()})
        else:
            state["bad_epochs"] += 1
        state["epoch"] = epoch
        epochs.set_postfix(train=f"{train_stats.total:.3f}", val=f"{val_objective:.3f}",
                           best=state["best_epoch"])
        logger.info(f"epoch {epoch:3d}  train {train_stats.total:.4f}  val {val_objective:.4f}"
            f"{'  *' if improved else ''}  ({seconds:.1f}s)")
        if main:
            with atomic_path(paths.train_log) as tmp:
                tmp.write_text("\n".join(log_lines) + "\n")
            save_checkpoint(paths.resume_checkpoint, {**base, **state, "model": model.state_dict(),
                                                      "weighting": weighting.state_dict(),
                                                      "optimizer": optimizer.state_dict(),
                                                      "rng": _rng_state(generator), "epoch_seconds": epoch_seconds})
        if state["bad_epochs"] >= config.train.patience:
            logger.info(f"early stop: no validation improvement for {config.train.patience} epochs")
            break
    epochs.close()

    if main:  # the best checkpoint also carries the full history (written after the last epoch)
        best = torch.load(paths.checkpoint, map_location="cpu", weights_only=True)
        best["history"] = state["history"]
        if config.train.wise_alpha < 1.0:  # mix with the pretrained weights, refit the heads (training/wise.py)
            model.load_state_dict(best["model"])
            best["wise"] = finish_with_wise(model, config, data, labels, train_idx, val_idx, scale, dev)
            best["model"] = model.state_dict()
        save_checkpoint(paths.checkpoint, best)
        if not keep_resume:
            paths.resume_checkpoint.unlink(missing_ok=True)
    distributed.barrier()  # on every rank, training ends once model.pt is complete
    return TrainResult(paths.checkpoint, state["best_epoch"], state["epoch"], state["history"], catalogue,
                       epoch_seconds)


def _rng_state(generator: torch.Generator) -> dict[str, Any]:
    """Every random generator training may draw from, as ``torch.load(weights_only=True)`` can read it."""
    _, key, pos, has_gauss, cached_gaussian = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"key": torch.from_numpy(np.asarray(key, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)},
        "python": random.getstate(),
        "batch_order": generator.get_state(),
    }


def _set_rng_state(saved: dict[str, Any], generator: torch.Generator) -> None:
    # map_location may have moved the states to the GPU; generators take CPU byte tensors.
    torch.set_rng_state(saved["torch"].cpu())
    if saved["cuda"] and torch.cuda.is_available() and len(saved["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in saved["cuda"]])
    numpy = saved["numpy"]
    np.random.set_state(("MT19937", numpy["key"].cpu().numpy().astype(np.uint32), numpy["pos"],
                         numpy["has_gauss"], numpy["cached_gaussian"]))
    version, internal, gauss = saved["python"]
    random.setstate((version, tuple(internal), gauss))
    generator.set_state(saved["batch_order"].cpu())


def _resumable(saved: dict[str, Any], current: dict[str, Any]) -> bool:
    """A run can resume under the same config, except for the epoch budget and patience, which only
    say when to stop (so an interrupted run can be given more, or fewer, epochs), and WiSE-FT's alpha, which
    only acts once the epochs are done (training/wise.py)."""
    def without_budget(config: dict[str, Any]) -> dict[str, Any]:
        return {**config, "train": {k: v for k, v in config["train"].items()
                                    if k not in ("max_epochs", "patience", "wise_alpha")}}

    # Through from_dict, so a checkpoint from before a config field was added compares with its default.
    saved = BuildConfig.from_dict(saved).to_dict()
    return without_budget(saved) == without_budget(current)
