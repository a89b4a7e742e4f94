"""Training the gallery encoder by multi-task learning.

Adam, a train/validation split by listing, early stopping on the validation loss, a checkpoint that
carries its config (``model.pt``, loadable with ``torch.load(weights_only=True)``), and resume from
``last.pt`` after an interruption. The frozen trunk's features are computed once and reused by
every epoch (see ``gallery_core.data.photos``).

The visual-search objectives (``TrainConfig.triplet_weight``, ``vae_weight``, ``augment``) are optional
and off by default: ``Objectives`` holds what they need and ``run_epoch`` adds their losses to the
weighting as further named tasks ("triplet", "vae").
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from gallery_core.artifacts.store import RunPaths, atomic_path, write_json
from gallery_core.config import MIN_VALIDATION_LISTINGS, SCHEMA_VERSION, BuildConfig, ModelConfig, TrainConfig
from gallery_core.data.catalogue import Catalogue
from gallery_core.data.photos import (
    cached_trunk_features,
    find_undecodable,
    load_photo,
    to_model_input,
    trunk_cache_key,
)
from gallery_core.data.tasks import TaskSpec, encode_labels, observed_mask
from gallery_core.errors import UsageError
from gallery_core.models.backbones import create_backbone
from gallery_core.models.encoder import GalleryEncoder, GalleryModel, MultiTaskHeads, task_loss
from gallery_core.models.vae import VAEDecoder, cached_thumbnails, thumbnails_to_tensor, vae_loss
from gallery_core.training.augment import Augmenter
from gallery_core.training.triplets import (
    LevelTable,
    MiningConfig,
    attribute_codes,
    mine_levels,
    triplet_margin_loss,
)
from gallery_core.vectors import group_mean
from gallery_core.weighting import LossWeighting, PseudoUniformWeighting, create_weighting

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "gallery-core-checkpoint"


def pick_device(name: str | None = None) -> torch.device:
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_model(config: ModelConfig, tasks: tuple[TaskSpec, ...], pretrained: bool = True,
                vae_image_size: int | None = None) -> GalleryModel:
    """``vae_image_size``: add the VAE objective's decoder (its weights then live in the checkpoint)."""
    backbone = create_backbone(config.backbone, config.trainable_stages, config.weights_path, pretrained,
                               config.freeze_batchnorm)
    encoder = GalleryEncoder(backbone, config.embed_dim)
    decoder = VAEDecoder(encoder.embed_dim, vae_image_size) if vae_image_size else None
    return GalleryModel(encoder, MultiTaskHeads(tasks, encoder.embed_dim, config.head_hidden), decoder)


class L2SP(nn.Module):
    """L2-SP (Li, Grandvalet & Davoine, 2018): ``weight / 2 * sum ||w - w0||^2`` over the fine-tuned
    backbone weights, w0 their pretrained values (taken when this is made, before any training)."""

    def __init__(self, backbone_top: nn.Module, weight: float):
        super().__init__()
        self.weight = weight
        self.params = [p for p in backbone_top.parameters() if p.requires_grad]
        self.anchors = [p.detach().clone() for p in self.params]

    def forward(self) -> torch.Tensor:
        if not self.params:
            return torch.zeros(())
        return 0.5 * self.weight * sum(((p - a) ** 2).sum() for p, a in zip(self.params, self.anchors, strict=True))


def small_catalogue_check(model: GalleryModel, n_train: int, n_val: int, config: TrainConfig) -> bool:
    """Say plainly when a catalogue is too small to learn from; below ``min_listings_to_finetune`` training
    listings freeze the backbone's top (weights and statistics). Returns whether the backbone fine-tunes."""
    backbone = model.encoder.backbone
    if n_val < MIN_VALIDATION_LISTINGS:
        logger.warning(f"the validation split has only {n_val} listings: early stopping and the validation "
            "metrics rest on a handful of galleries and mean little")
    if n_train >= config.min_listings_to_finetune or len(backbone.top) == 0:
        return len(backbone.top) > 0
    logger.warning(f"only {n_train} training listings, fewer than min_listings_to_finetune="
        f"{config.min_listings_to_finetune}: too few to fine-tune the backbone without losing what it knows. "
        f"Its {len(backbone.top)} top stages keep their pretrained weights and statistics and only the heads train, "
        "so the embedding is the backbone's own features (as good for retrieval as they are). Pass "
        "--min-listings-to-finetune 0 to fine-tune anyway.")
    backbone.top.requires_grad_(False)
    backbone.freeze_batchnorm = True
    return False


def param_groups(model: GalleryModel, weighting: nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
    """Adam's parameter groups: the fine-tuned backbone stages at ``lr * backbone_lr_mult``, the rest
    (projection, heads, decoder, learned loss weights) at ``lr``. Frozen weights are in neither."""
    backbone = {id(p) for p in model.encoder.backbone.parameters()}
    top = [p for p in model.encoder.backbone.parameters() if p.requires_grad]
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in backbone] + list(weighting.parameters())
    groups = [{"params": rest, "lr": config.lr}]
    if top and config.backbone_lr_mult > 0:
        groups.append({"params": top, "lr": config.lr * config.backbone_lr_mult})
    elif top:  # a multiplier of 0 freezes the top: it then trains nothing, and has no optimizer state
        for p in top:
            p.requires_grad_(False)
    return groups


def _vae_image_size(config: BuildConfig) -> int | None:
    return config.train.vae_image_size if config.train.vae_weight > 0 else None


# --- the data a training run (and the embed step) works on ---

@dataclass
class GalleryData:
    """Listings, their photos as cached trunk features or file paths, and encoded labels."""

    catalogue: Catalogue  # without undecodable photos
    photo_offsets: np.ndarray  # (n_listings + 1,): listing i's photos are rows offsets[i]:offsets[i+1]
    trunk_features: torch.Tensor | None  # (n_photos, C, h, w) float16, or None to decode pixels per batch
    image_size: int

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
            return self.trunk_features[torch.from_numpy(rows)].to(device).float(), gallery_ids, True
        paths = self.catalogue.photos["path"].to_numpy()[rows]
        pixels = np.stack([load_photo(p, self.image_size) for p in paths])
        return to_model_input(pixels).to(device), gallery_ids, False


def prepare_data(catalogue: Catalogue, model: GalleryModel, config: ModelConfig, cache_dir: Path,
                 cache_key: str, use_cache: bool, device: torch.device, progress: bool = True,
                 ) -> GalleryData:
    """Compute (or load) the trunk features, drop undecodable photos, and index galleries."""
    trunk_features = None
    if use_cache:
        features, bad = cached_trunk_features(cache_dir, cache_key, model.encoder.backbone,
                                              catalogue.photos["path"].tolist(), config.image_size, device, progress)
        catalogue = catalogue.without_photos(bad)
        trunk_features = torch.from_numpy(np.array(features))  # into memory, writable
    else:
        # Photos are decoded every epoch: find the undecodable ones once, up front, not mid-epoch.
        catalogue = catalogue.without_photos(find_undecodable(catalogue.photos["path"].tolist(), config.image_size))
    sizes = catalogue.gallery_sizes()
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return GalleryData(catalogue, offsets, trunk_features, config.image_size)


def split_listings(listing_ids: list[str], val_fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of validation listings: a seeded random split by listing."""
    rng = np.random.default_rng(seed)
    n_val = max(1, round(val_fraction * len(listing_ids)))
    is_val = np.zeros(len(listing_ids), dtype=bool)
    is_val[rng.permutation(len(listing_ids))[:n_val]] = True
    return is_val


def label_tensors(catalogue: Catalogue) -> dict[str, torch.Tensor]:
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


def run_epoch(model: GalleryModel, weighting: LossWeighting, data: GalleryData, listing_idx: np.ndarray,
              labels: dict[str, torch.Tensor], batch_size: int, device: torch.device,
              optimizer: torch.optim.Optimizer | None = None, generator: torch.Generator | None = None,
              progress: bool = False, desc: str = "", objectives: Objectives | None = None,
              epoch: int = 0, penalty: Callable[[], torch.Tensor] | None = None) -> EpochStats:
    """Train (with an optimizer) or evaluate (without) over the given listings.

    ``objectives`` adds the triplet / VAE losses (and augmentation when training); ``epoch`` seeds
    their sampling, so an epoch is reproducible on resume (evaluation always samples alike).
    ``penalty`` (training only) is added to each batch's weighted loss, e.g. ``L2SP``.
    """
    training = optimizer is not None
    model.train(training)
    if training:
        listing_idx = listing_idx[torch.randperm(len(listing_idx), generator=generator).numpy()]
    names = list(labels) + (objectives.names if objectives is not None else [])
    sums = dict.fromkeys(names, 0.0)
    counts = dict.fromkeys(names, 0)
    rng = np.random.default_rng([objectives.seed, epoch if training else 0]) if objectives is not None else None
    total, n_batches = 0.0, 0
    use_amp = device.type == "cuda"
    batches = range(0, len(listing_idx), batch_size)
    with torch.set_grad_enabled(training):
        for start in tqdm(batches, desc=desc, leave=False, disable=not progress):
            idx = listing_idx[start:start + batch_size]
            extra: dict[str, tuple[torch.Tensor, int]] = {}
            if objectives is None:
                inputs, gallery_ids, from_trunk = data.batch(idx, device)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                    _, outputs = model(inputs, gallery_ids, len(idx), from_trunk)
            else:
                outputs, extra = _objectives_batch(model, data, idx, objectives, training, epoch, rng, device,
                                                   use_amp)
            losses = {}
            for name, head_out in outputs.items():
                loss, n = task_loss(model.heads.heads[name].task, head_out, labels[name][idx].to(device))
                if n:
                    losses[name] = loss
                    sums[name] += float(loss.detach()) * n
                    counts[name] += n
            for name, (loss, n) in extra.items():
                if n:
                    losses[name] = loss
                    sums[name] += float(loss.detach()) * n
                    counts[name] += n
            if not losses:
                continue
            batch_total = weighting(losses)
            if training and penalty is not None:  # a regulariser on the weights (L2-SP), training only
                batch_total = batch_total + penalty().to(batch_total.device)
            if training:
                optimizer.zero_grad(set_to_none=True)
                batch_total.backward()
                optimizer.step()
            total += float(batch_total.detach())
            n_batches += 1
    task_losses = {name: sums[name] / counts[name] for name in names if counts[name]}
    return EpochStats(total / max(n_batches, 1), task_losses)


# --- the visual-search objectives: triplet ranking, VAE, augmentation ---

@dataclass
class Objectives:
    """What training needs beyond the attribute heads (each part None when its objective is off)."""

    train_levels: LevelTable | None = None  # mined triplet candidates among the training listings
    val_levels: LevelTable | None = None  # among the validation listings (validation loss only)
    margin: float = 0.2
    thumbnails: np.ndarray | None = None  # VAE targets (n_photos, 3, S, S) uint8, rows = data's photo rows
    augmenter: Augmenter | None = None
    seed: int = 0

    @property
    def names(self) -> list[str]:
        return (["triplet"] if self.train_levels is not None else []) + \
            (["vae"] if self.thumbnails is not None else [])


def objective_weights(config: TrainConfig) -> dict[str, float]:
    """The extra objectives a config turns on -> their weight in the loss weighting."""
    weights = {}
    if config.triplet_weight > 0:
        weights["triplet"] = config.triplet_weight
    if config.vae_weight > 0:
        weights["vae"] = config.vae_weight
    return weights


def prepare_objectives(config: BuildConfig, data: GalleryData, train_idx: np.ndarray, val_idx: np.ndarray,
                       cache_dir: Path) -> Objectives | None:
    """Mine triplet levels (offline, training tasks' columns only, each split among itself), decode
    the VAE's thumbnails (cached) and set up augmentation; None when all are off."""
    t = config.train
    if not objective_weights(t) and not t.augment:
        return None
    objectives = Objectives(margin=t.triplet_margin, seed=t.seed)
    if t.triplet_weight > 0:
        codes = attribute_codes(data.catalogue.listings, data.catalogue.tasks, fit_rows=train_idx)
        mining = MiningConfig(seed=t.seed)
        objectives.train_levels = mine_levels(codes, train_idx, mining)
        objectives.val_levels = mine_levels(codes, val_idx, mining)
    if t.vae_weight > 0:
        objectives.thumbnails = cached_thumbnails(cache_dir, data.catalogue.photos["path"].tolist(),
                                                  t.vae_image_size)
    if t.augment:
        objectives.augmenter = Augmenter(config.model.image_size, seed=t.seed)
    return objectives


def _objectives_batch(model: GalleryModel, data: GalleryData, idx: np.ndarray, objectives: Objectives,
                      training: bool, epoch: int, rng: np.random.Generator, device: torch.device, use_amp: bool,
                      ) -> tuple[dict[str, torch.Tensor], dict[str, tuple[torch.Tensor, int]]]:
    """One batch with the extra objectives -> (head outputs for ``idx``, {objective: (loss, count)}).

    Each listing of ``idx`` anchors one sampled triplet; its positive and negative galleries join the
    forward pass (the heads still see only ``idx``, so the attribute objective is unchanged). The VAE
    reconstructs the photos of ``idx``; augmentation corrupts every photo of the pass when training.
    """
    levels = objectives.train_levels if training else objectives.val_levels
    triplet = levels.sample(idx, rng) if levels is not None else None
    galleries = idx
    if triplet is not None:
        extra_rows = np.setdiff1d(np.concatenate([triplet[1], triplet[2]]), idx)
        galleries = np.concatenate([idx, extra_rows])
    if training and objectives.augmenter is not None:
        rows, owner = data.photo_rows(galleries)
        paths = data.catalogue.photos["path"].to_numpy()[rows]
        inputs = to_model_input(objectives.augmenter.pixels(paths, rows, epoch)).to(device)
        gallery_ids, from_trunk = torch.from_numpy(owner).to(device), False
    else:
        inputs, gallery_ids, from_trunk = data.batch(galleries, device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
        photo_embeddings = model.encoder.embed_photos(inputs, from_trunk)  # (P, D)
        embedding = group_mean(photo_embeddings, gallery_ids, len(galleries))  # (G, D)
        outputs = model.heads(embedding[:len(idx)])
    extra: dict[str, tuple[torch.Tensor, int]] = {}
    if triplet is not None:
        position = {int(r): i for i, r in enumerate(galleries)}
        a, p, n = (torch.tensor([position[int(r)] for r in rows_], dtype=torch.long, device=device)
                   for rows_ in triplet[:3])
        gap = torch.from_numpy(triplet[3]).to(device)
        extra["triplet"] = (triplet_margin_loss(embedding[a], embedding[p], embedding[n], gap, objectives.margin),
                            len(a))
    if objectives.thumbnails is not None:
        own = gallery_ids < len(idx)  # photos of the batch's own listings come first
        target = thumbnails_to_tensor(objectives.thumbnails[data.photo_rows(idx)[0]]).to(device)
        reconstruction, mu, log_var = model.decoder(photo_embeddings[own].float(), sample=training)
        extra["vae"] = (vae_loss(reconstruction, target, mu, log_var), int(own.sum()))
    return outputs, extra


# --- the training run ---

@dataclass
class TrainResult:
    checkpoint_path: Path
    best_epoch: int
    epochs_run: int
    history: list[dict[str, Any]]
    catalogue: Catalogue  # as trained on (without undecodable photos)


def train(catalogue: Catalogue, config: BuildConfig, run_dir: str | Path, resume: bool = True,
          device: str | None = None, progress: bool = True,
          cache_dir: str | Path | None = None) -> TrainResult:
    """Train the encoder and heads on ``catalogue``; write ``model.pt`` (best epoch) and ``train_log.jsonl``.

    ``cache_dir`` (default ``<run_dir>/cache``) holds the frozen-trunk features; pointing it at another
    run's cache lets a model trained on a subset of the same catalogue reuse them.
    """
    config.validate()
    paths = RunPaths(Path(run_dir))
    paths.root.mkdir(parents=True, exist_ok=True)
    dev = pick_device(device)
    torch.manual_seed(config.train.seed)
    if dev.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)

    model = build_model(config.model, catalogue.tasks, vae_image_size=_vae_image_size(config)).to(dev)
    cache_key = trunk_cache_key(catalogue.fingerprint, model.encoder.backbone, config.model.image_size)
    cache_dir = Path(cache_dir) if cache_dir else paths.cache_dir
    # Augmentation changes the pixels every epoch, so it cannot reuse the frozen trunk's cached output.
    data = prepare_data(catalogue, model, config.model, cache_dir, cache_key,
                        config.train.cache_trunk and not config.train.augment, dev, progress)
    catalogue = data.catalogue
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
    extra = objective_weights(config.train)
    objectives = prepare_objectives(config, data, train_idx, val_idx, cache_dir)
    weighting = create_weighting(config.train.weighting, catalogue.tasks, variances, extra).to(dev)
    scale = PseudoUniformWeighting(catalogue.tasks, variances, extra)
    finetune = small_catalogue_check(model, len(train_idx), len(val_idx), config.train)
    # Anchored before any training or resume: w0 are the pretrained weights.
    l2sp = L2SP(model.encoder.backbone.top, config.train.l2sp_weight) if config.train.l2sp_weight > 0 else None
    optimizer = torch.optim.Adam(param_groups(model, weighting, config.train))

    state = {"epoch": 0, "best_val": math.inf, "best_epoch": 0, "bad_epochs": 0, "history": []}
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
    if resume and paths.resume_checkpoint.is_file():
        saved = torch.load(paths.resume_checkpoint, map_location=dev, weights_only=True)
        if _resumable(saved["config"], base["config"]) and saved["catalogue_fingerprint"] == catalogue.fingerprint:
            model.load_state_dict(saved["model"])
            weighting.load_state_dict(saved["weighting"])
            optimizer.load_state_dict(saved["optimizer"])
            state = {k: saved[k] for k in state}
            logger.info(f"resuming after epoch {state['epoch']} from {paths.resume_checkpoint}")
        else:
            logger.info(f"ignoring {paths.resume_checkpoint}: it was made with another config or catalogue")

    generator = torch.Generator().manual_seed(config.train.seed)
    log_lines = [json.dumps(h) for h in state["history"]]
    epochs = tqdm(range(state["epoch"] + 1, config.train.max_epochs + 1), desc="training", unit="epoch",
                  disable=not progress, initial=state["epoch"], total=config.train.max_epochs)
    for epoch in epochs:
        generator.manual_seed(config.train.seed * 100_003 + epoch)  # resume-safe: the order depends on the epoch
        if objectives is not None and objectives.thumbnails is not None:
            torch.manual_seed(config.train.seed * 100_003 + epoch)  # the VAE's latent samples, resume-safe too
        started = time.perf_counter()
        train_stats = run_epoch(model, weighting, data, train_idx, labels, config.train.batch_size, dev,
                                optimizer, generator, progress, desc=f"epoch {epoch}", objectives=objectives,
                                epoch=epoch, penalty=l2sp)
        val_stats = run_epoch(model, weighting, data, val_idx, labels, config.train.batch_size, dev,
                              objectives=objectives)
        val_objective = val_stats.objective(scale)
        entry = {
            "epoch": epoch, "seconds": round(time.perf_counter() - started, 2),
            "train_loss": train_stats.total, "val_objective": val_objective,
            "train_task_losses": train_stats.task_losses, "val_task_losses": val_stats.task_losses,
            "task_weights": weighting.weights(),
        }
        state["history"].append(entry)
        log_lines.append(json.dumps(entry))
        improved = val_objective < state["best_val"] - 1e-6
        if improved:
            state.update(best_val=val_objective, best_epoch=epoch, bad_epochs=0)
            _save(paths.checkpoint, {**base, **state, "epoch": epoch, "model": model.state_dict(),
                                     "weighting": weighting.state_dict()})
        else:
            state["bad_epochs"] += 1
        state["epoch"] = epoch
        epochs.set_postfix(train=f"{train_stats.total:.3f}", val=f"{val_objective:.3f}",
                           best=state["best_epoch"])
        logger.info(f"epoch {epoch:3d}  train {train_stats.total:.4f}  val {val_objective:.4f}"
            f"{'  *' if improved else ''}  ({entry['seconds']:.1f}s)")
        with atomic_path(paths.train_log) as tmp:
            tmp.write_text("\n".join(log_lines) + "\n")
        _save(paths.resume_checkpoint, {**base, **state, "model": model.state_dict(),
                                        "weighting": weighting.state_dict(), "optimizer": optimizer.state_dict()})
        if state["bad_epochs"] >= config.train.patience:
            logger.info(f"early stop: no validation improvement for {config.train.patience} epochs")
            break
    epochs.close()

    # The best checkpoint also carries the full history (written after the last epoch).
    best = torch.load(paths.checkpoint, map_location="cpu", weights_only=True)
    best["history"] = state["history"]
    _save(paths.checkpoint, best)
    paths.resume_checkpoint.unlink(missing_ok=True)
    return TrainResult(paths.checkpoint, state["best_epoch"], state["epoch"], state["history"], catalogue)


def _resumable(saved: dict[str, Any], current: dict[str, Any]) -> bool:
    """A run can resume under the same config, except for the epoch budget and patience, which only
    say when to stop (so an interrupted run can be given more, or fewer, epochs)."""
    def without_budget(config: dict[str, Any]) -> dict[str, Any]:
        return {**config, "train": {k: v for k, v in config["train"].items() if k not in ("max_epochs", "patience")}}

    # Through from_dict, so a checkpoint from before a config field was added compares with its default.
    saved = BuildConfig.from_dict(saved).to_dict()
    return without_budget(saved) == without_budget(current)


def _save(path: Path, payload: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | Path, device: str | None = None) -> tuple[GalleryModel, dict[str, Any]]:
    """The trained model (eval mode) and its checkpoint dict (config, tasks, split, history)."""
    path = Path(path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise UsageError(f"{path}: not a gallery-core checkpoint")
    config = BuildConfig.from_dict(checkpoint["config"])
    tasks = tuple(TaskSpec.from_dict(t) for t in checkpoint["tasks"])
    # Every weight, the frozen trunk's included, comes from the checkpoint itself.
    model = build_model(config.model, tasks, pretrained=False, vae_image_size=_vae_image_size(config))
    model.encoder.backbone.weight_source = checkpoint["backbone"]["weight_source"]
    model.load_state_dict(checkpoint["model"])
    return model.to(pick_device(device)).eval(), checkpoint
