"""Training the gallery encoder by multi-task learning.

Adam, a train/validation split by listing, early stopping on the validation loss, a checkpoint that
carries its config (``model.pt``, loadable with ``torch.load(weights_only=True)``), and resume from
``last.pt`` after an interruption. The frozen trunk's features are computed once and reused by
every epoch (see ``gallery_core.photos``).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from gallery_core.artifacts import RunPaths, atomic_path, write_json
from gallery_core.backbones import create_backbone
from gallery_core.catalogue import Catalogue
from gallery_core.config import SCHEMA_VERSION, BuildConfig, ModelConfig
from gallery_core.model import GalleryEncoder, GalleryModel, MultiTaskHeads, task_loss
from gallery_core.photos import cached_trunk_features, load_photo, to_model_input, trunk_cache_key
from gallery_core.tasks import TaskSpec, encode_labels, observed_mask
from gallery_core.weighting import LossWeighting, PseudoUniformWeighting, create_weighting

CHECKPOINT_FORMAT = "gallery-core-checkpoint"


def pick_device(name: str | None = None) -> torch.device:
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_model(config: ModelConfig, tasks: tuple[TaskSpec, ...], pretrained: bool = True) -> GalleryModel:
    backbone = create_backbone(config.backbone, config.trainable_stages, config.weights_path, pretrained)
    encoder = GalleryEncoder(backbone, config.embed_dim)
    return GalleryModel(encoder, MultiTaskHeads(tasks, config.embed_dim, config.head_hidden))


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

    def batch(self, listing_idx: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """Photos of these listings as one flat batch: (inputs (P, ...), gallery_ids (P,), from_trunk)."""
        starts, ends = self.photo_offsets[listing_idx], self.photo_offsets[listing_idx + 1]
        rows = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends, strict=True)])
        gallery_ids = torch.from_numpy(np.repeat(np.arange(len(listing_idx)), ends - starts)).to(device)
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
                raise ValueError(f"task {t.name!r}: fewer than 2 training labels; cannot train it")
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
              progress: bool = False, desc: str = "") -> EpochStats:
    """Train (with an optimizer) or evaluate (without) over the given listings."""
    training = optimizer is not None
    model.train(training)
    if training:
        listing_idx = listing_idx[torch.randperm(len(listing_idx), generator=generator).numpy()]
    sums = dict.fromkeys(labels, 0.0)
    counts = dict.fromkeys(labels, 0)
    total, n_batches = 0.0, 0
    use_amp = device.type == "cuda"
    batches = range(0, len(listing_idx), batch_size)
    with torch.set_grad_enabled(training):
        for start in tqdm(batches, desc=desc, leave=False, disable=not progress):
            idx = listing_idx[start:start + batch_size]
            inputs, gallery_ids, from_trunk = data.batch(idx, device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                _, outputs = model(inputs, gallery_ids, len(idx), from_trunk)
            losses = {}
            for name, head_out in outputs.items():
                loss, n = task_loss(model.heads.heads[name].task, head_out, labels[name][idx].to(device))
                if n:
                    losses[name] = loss
                    sums[name] += float(loss.detach()) * n
                    counts[name] += n
            if not losses:
                continue
            batch_total = weighting(losses)
            if training:
                optimizer.zero_grad(set_to_none=True)
                batch_total.backward()
                optimizer.step()
            total += float(batch_total.detach())
            n_batches += 1
    task_losses = {name: sums[name] / counts[name] for name in labels if counts[name]}
    return EpochStats(total / max(n_batches, 1), task_losses)


# --- the training run ---

@dataclass
class TrainResult:
    checkpoint_path: Path
    best_epoch: int
    epochs_run: int
    history: list[dict[str, Any]]
    catalogue: Catalogue  # as trained on (without undecodable photos)


def train(catalogue: Catalogue, config: BuildConfig, run_dir: str | Path, resume: bool = True,
          device: str | None = None, progress: bool = True, log: Callable[[str], None] = print) -> TrainResult:
    """Train the encoder and heads on ``catalogue``; write ``model.pt`` (best epoch) and ``train_log.jsonl``."""
    config.validate()
    paths = RunPaths(Path(run_dir))
    paths.root.mkdir(parents=True, exist_ok=True)
    dev = pick_device(device)
    torch.manual_seed(config.train.seed)
    if dev.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)

    model = build_model(config.model, catalogue.tasks).to(dev)
    cache_key = trunk_cache_key(catalogue.fingerprint, model.encoder.backbone, config.model.image_size)
    data = prepare_data(catalogue, model, config.model, paths.cache_dir, cache_key, config.train.cache_trunk,
                        dev, progress)
    catalogue = data.catalogue
    write_json(paths.catalogue_report, catalogue.report.to_dict())
    if catalogue.report.skipped_photos or catalogue.report.empty_listings:
        log(f"catalogue: {catalogue.report.summary()} (details in {paths.catalogue_report})")

    labels = label_tensors(catalogue)
    is_val = split_listings(catalogue.listings["listing_id"].tolist(), config.train.val_fraction, config.train.seed)
    train_idx, val_idx = np.flatnonzero(~is_val), np.flatnonzero(is_val)
    stats = regression_stats(catalogue, labels, train_idx)
    for name, (mean, var) in stats.items():
        model.heads.set_label_scale(name, mean, math.sqrt(var))
    variances = {name: var for name, (_, var) in stats.items()}
    weighting = create_weighting(config.train.weighting, catalogue.tasks, variances).to(dev)
    scale = PseudoUniformWeighting(catalogue.tasks, variances)
    trainable = [p for p in model.parameters() if p.requires_grad] + list(weighting.parameters())
    optimizer = torch.optim.Adam(trainable, lr=config.train.lr)

    state = {"epoch": 0, "best_val": math.inf, "best_epoch": 0, "bad_epochs": 0, "history": []}
    base = {
        "format": CHECKPOINT_FORMAT, "schema_version": SCHEMA_VERSION, "config": config.to_dict(),
        "tasks": [t.to_dict() for t in catalogue.tasks],
        "backbone": {"name": config.model.backbone, "weight_source": model.encoder.backbone.weight_source},
        "catalogue_fingerprint": catalogue.fingerprint, "trunk_cache_key": cache_key,
        "val_listing_ids": catalogue.listings["listing_id"].to_numpy()[val_idx].tolist(),
        "regression_stats": {k: list(v) for k, v in stats.items()},
    }
    if resume and paths.resume_checkpoint.is_file():
        saved = torch.load(paths.resume_checkpoint, map_location=dev, weights_only=True)
        if saved["config"] == base["config"] and saved["catalogue_fingerprint"] == catalogue.fingerprint:
            model.load_state_dict(saved["model"])
            weighting.load_state_dict(saved["weighting"])
            optimizer.load_state_dict(saved["optimizer"])
            state = {k: saved[k] for k in state}
            log(f"resuming after epoch {state['epoch']} from {paths.resume_checkpoint}")
        else:
            log(f"ignoring {paths.resume_checkpoint}: it was made with another config or catalogue")

    generator = torch.Generator().manual_seed(config.train.seed)
    log_lines = [json.dumps(h) for h in state["history"]]
    epochs = tqdm(range(state["epoch"] + 1, config.train.max_epochs + 1), desc="training", unit="epoch",
                  disable=not progress, initial=state["epoch"], total=config.train.max_epochs)
    for epoch in epochs:
        generator.manual_seed(config.train.seed * 100_003 + epoch)  # resume-safe: the order depends on the epoch
        started = time.perf_counter()
        train_stats = run_epoch(model, weighting, data, train_idx, labels, config.train.batch_size, dev,
                                optimizer, generator, progress, desc=f"epoch {epoch}")
        val_stats = run_epoch(model, weighting, data, val_idx, labels, config.train.batch_size, dev)
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
        log(f"epoch {epoch:3d}  train {train_stats.total:.4f}  val {val_objective:.4f}"
            f"{'  *' if improved else ''}  ({entry['seconds']:.1f}s)")
        with atomic_path(paths.train_log) as tmp:
            tmp.write_text("\n".join(log_lines) + "\n")
        _save(paths.resume_checkpoint, {**base, **state, "model": model.state_dict(),
                                        "weighting": weighting.state_dict(), "optimizer": optimizer.state_dict()})
        if state["bad_epochs"] >= config.train.patience:
            log(f"early stop: no validation improvement for {config.train.patience} epochs")
            break
    epochs.close()

    # The best checkpoint also carries the full history (written after the last epoch).
    best = torch.load(paths.checkpoint, map_location="cpu", weights_only=True)
    best["history"] = state["history"]
    _save(paths.checkpoint, best)
    paths.resume_checkpoint.unlink(missing_ok=True)
    return TrainResult(paths.checkpoint, state["best_epoch"], state["epoch"], state["history"], catalogue)


def _save(path: Path, payload: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | Path, device: str | None = None) -> tuple[GalleryModel, dict[str, Any]]:
    """The trained model (eval mode) and its checkpoint dict (config, tasks, split, history)."""
    path = Path(path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a gallery-core checkpoint")
    config = BuildConfig.from_dict(checkpoint["config"])
    tasks = tuple(TaskSpec.from_dict(t) for t in checkpoint["tasks"])
    # Every weight, the frozen trunk's included, comes from the checkpoint itself.
    model = build_model(config.model, tasks, pretrained=False)
    model.encoder.backbone.weight_source = checkpoint["backbone"]["weight_source"]
    model.load_state_dict(checkpoint["model"])
    return model.to(pick_device(device)).eval(), checkpoint
