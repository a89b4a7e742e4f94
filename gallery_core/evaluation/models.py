"""Models the evaluation trains or reads: baselines through the core ``train``, a shallow probe, and
gallery embeddings computed from the run's frozen-trunk cache.

Every model here reads the trunk features the run already cached (``<run>/cache``), so a baseline
trained on any subset of the catalogue costs only its trainable top.
"""

from __future__ import annotations

import copy
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import accuracy_score, r2_score

from gallery_core.artifacts.run import Run
from gallery_core.config import BuildConfig
from gallery_core.data.catalogue import Catalogue, load_catalogue
from gallery_core.data.photos import cached_trunk_features
from gallery_core.data.tasks import TaskSpec
from gallery_core.errors import UsageError
from gallery_core.evaluation.config import ProbeConfig
from gallery_core.models.backbones import create_backbone
from gallery_core.models.checkpoint import load_checkpoint
from gallery_core.models.device import pick_device
from gallery_core.models.encoder import GalleryModel, TaskHead, task_loss
from gallery_core.pipeline.embed import mean_per_listing, pretrained_photo_features
from gallery_core.training.data import prepare_data
from gallery_core.training.loop import train
from gallery_core.training.objectives import attributes_only


def load_run_catalogue(run: Run, catalogue_dir: str | Path | None = None) -> Catalogue:
    """The catalogue the run was trained on; refused if it changed since (the trunk cache and the
    split would no longer describe it)."""
    root = Path(catalogue_dir) if catalogue_dir is not None else Path(run.manifest["catalogue"]["root"])
    catalogue = load_catalogue(root)
    expected = run.manifest["catalogue"]["fingerprint"]
    if catalogue.fingerprint != expected:
        raise UsageError(f"{root}: the catalogue changed since run {run.name} was built (fingerprint "
                         f"{catalogue.fingerprint} != {expected}); rebuild the run before evaluating it")
    return catalogue


# --- baselines trained through the core training loop ---


@dataclass
class TrainedModel:
    model: GalleryModel
    checkpoint: dict[str, Any]
    seconds: float  # wall time of training (noisy on a shared machine)
    best_epoch: int
    epochs_run: int
    max_epochs: int
    n_listings: int  # listings given to training (train + its own early-stopping split)

    @property
    def still_improving(self) -> bool:
        """Its best epoch was its last allowed one: more epochs might have helped it."""
        return self.best_epoch == self.max_epochs

    def summary(self) -> dict[str, Any]:
        return {"seconds": round(self.seconds, 2), "best_epoch": self.best_epoch, "epochs_run": self.epochs_run,
                "max_epochs": self.max_epochs, "n_listings": self.n_listings,
                "still_improving": self.still_improving}


def train_baseline(catalogue: Catalogue, tasks: tuple[TaskSpec, ...], config: BuildConfig, work_dir: Path,
                   cache_dir: Path, device: str | None = None, progress: bool = True,
                   keep: bool = False) -> TrainedModel:
    """Train a GalleryModel of the run's architecture on ``tasks`` alone, reusing the run's trunk cache. A model
    of one task (the end-to-end and single-task baselines) trains its attribute loss alone, as the paper's
    end-to-end baseline does (``training.objectives.attributes_only``).

    ``work_dir`` is scratch (checkpoints of a few tens of MB each); it is removed afterwards unless
    ``keep``. The core loop splits off its own early-stopping set from the listings it is given.
    """
    if not tasks:
        raise ValueError("a baseline needs at least one task")
    if len(tasks) == 1:
        config = replace(config, train=attributes_only(config.train))
    if work_dir.exists():
        shutil.rmtree(work_dir)  # never resume from a stale scratch run
    started = time.perf_counter()
    result = train(replace(catalogue, tasks=tasks), config, work_dir, resume=False, device=device,
                   progress=progress, cache_dir=cache_dir)
    seconds = time.perf_counter() - started
    model, checkpoint = load_checkpoint(result.checkpoint_path, device=device)
    if not keep:
        shutil.rmtree(work_dir, ignore_errors=True)
    return TrainedModel(model, checkpoint, seconds, result.best_epoch, result.epochs_run, config.train.max_epochs,
                        len(result.catalogue.listings))


@torch.no_grad()
def model_gallery_embeddings(model: GalleryModel, catalogue: Catalogue, config: BuildConfig, cache_dir: Path,
                             cache_key: str, device: str | None = None, batch_size: int = 64,
                             ) -> tuple[list[str], np.ndarray]:
    """The model's gallery embeddings (the heads' input, not normalised) of a catalogue's listings.

    Returns (listing ids, (L, D)); listings whose photos all fail to decode are left out.
    """
    dev = pick_device(device)
    model = model.to(dev).eval()
    data = prepare_data(catalogue, model, config.model, cache_dir, cache_key, use_cache=True, device=dev,
                        progress=False)
    chunks = []
    for start in range(0, data.n_listings, batch_size):
        idx = np.arange(start, min(start + batch_size, data.n_listings))
        inputs, gallery_ids, from_trunk = data.batch(idx, dev)
        chunks.append(model.encoder(inputs, gallery_ids, len(idx), from_trunk).float().cpu().numpy())
    embeddings = np.concatenate(chunks) if chunks else np.zeros((0, model.encoder.embed_dim), np.float32)
    return data.catalogue.listings["listing_id"].tolist(), embeddings


@torch.no_grad()
def head_outputs(model: GalleryModel, embeddings: np.ndarray) -> dict[str, np.ndarray]:
    """Each head's prediction: P(1) (binary), class probabilities (multiclass) or values (regression)."""
    model.eval()
    device = next(model.parameters()).device
    x = torch.from_numpy(np.asarray(embeddings, dtype=np.float32)).to(device)
    return {name: out.float().cpu().numpy() for name, out in model.heads.predict(x).items()}


# --- ImageNet transfer: the pretrained backbone's features, mean-pooled per gallery ---


def imagenet_gallery_features(run: Run, cache_dir: Path, cache_key: str,
                              device: str | None = None, progress: bool = True,
                              ) -> tuple[np.ndarray, np.ndarray]:
    """Photo features of the pretrained backbone alone: (listing means (L, F), photos (P, F)).

    Computed from the run's trunk cache (``embed.pretrained_photo_features``); rows follow
    ``run.listings`` and ``run.photos``.
    """
    config = run.config
    dev = pick_device(device)
    backbone = create_backbone(config.model.backbone, config.model.trainable_stages, config.model.weights_path,
                               pretrained=True)
    paths = run.photos["path"].tolist()
    features, bad = cached_trunk_features(cache_dir, cache_key, backbone, paths, config.model.image_size, dev,
                                          progress)
    if bad:  # the run's photo table already lists only decodable photos
        raise ValueError(f"{len(bad)} of the run's photos are not in its trunk cache as decodable")
    photo_features = pretrained_photo_features(config.model, features, dev, progress=progress)  # (P, F)
    listing_index = np.array(run.photos["listing_index"], dtype=np.int64)
    return mean_per_listing(photo_features, listing_index, len(run.listings)), photo_features


# --- the shallow probe on frozen features (the paper's 2-layer head) ---


@dataclass
class FittedProbe:
    head: TaskHead
    mean_: np.ndarray
    std_: np.ndarray
    best_epoch_: int
    seconds_: float

    @torch.no_grad()
    def predict(self, x: np.ndarray) -> np.ndarray:
        """P(1) (binary), class probabilities (multiclass, (N, C)) or values (regression)."""
        self.head.eval()
        z = torch.from_numpy(((np.asarray(x, np.float32) - self.mean_) / self.std_).astype(np.float32))
        return self.head.predict(z).numpy()

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self.predict(x)


def probe_score(task: TaskSpec, predicted: np.ndarray, y: np.ndarray) -> float:
    """The probe's test score: accuracy (binary, multiclass) or R^2 (regression), higher is better."""
    if task.kind == "regression":
        return float(r2_score(y, predicted))
    classes = predicted.argmax(axis=1) if task.kind == "multiclass" else (predicted > 0.5).astype(np.int64)
    return float(accuracy_score(np.asarray(y).astype(np.int64), classes))


def fit_probe(task: TaskSpec, x: np.ndarray, y: np.ndarray, config: ProbeConfig, seed: int = 0) -> FittedProbe:
    """Train a 2-layer head (Linear -> ReLU -> Linear, as on the MTL model) on frozen features.

    Features are standardised with the training rows' statistics; a seeded tenth of the training rows
    decides when to stop (validation loss), so the test split is never looked at. Any task kind: the
    loss is the MTL model's (``task_loss``); a regression head predicts around the labels' mean and std.
    ``y``: class indices (multiclass), 0/1 (binary) or values (regression), all observed.
    """
    config.validate()
    if config.hidden is None:
        raise ValueError("probe: set hidden (evaluate uses the run's head_hidden)")
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64 if task.kind == "multiclass" else np.float32)
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"need >= 2 rows with one label each, got {len(x)} rows and {len(y)} labels")
    started = time.perf_counter()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    n_val = max(1, round(config.val_fraction * len(x)))
    val_rows, fit_rows = order[:n_val], order[n_val:]
    mean = x[fit_rows].mean(axis=0)
    std = x[fit_rows].std(axis=0) + 1e-6
    z = torch.from_numpy((x - mean) / std)
    labels = torch.from_numpy(y)
    head = TaskHead(task, x.shape[1], config.hidden)
    if task.kind == "regression":
        head.label_mean.fill_(float(y[fit_rows].mean()))
        head.label_std.fill_(max(float(y[fit_rows].std()), 1e-6))
    optimizer = torch.optim.Adam(head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(seed)

    def loss_of(rows: torch.Tensor) -> torch.Tensor:
        return task_loss(task, head(z[rows]), labels[rows])[0]

    best_loss, best_epoch, best_state, bad = float("inf"), 0, copy.deepcopy(head.state_dict()), 0
    fit_t, val_t = torch.from_numpy(fit_rows), torch.from_numpy(val_rows)
    for epoch in range(1, config.max_epochs + 1):
        head.train()
        shuffled = fit_t[torch.randperm(len(fit_t), generator=generator)]
        for start in range(0, len(shuffled), config.batch_size):
            loss = loss_of(shuffled[start:start + config.batch_size])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        head.eval()
        with torch.no_grad():
            val_loss = float(loss_of(val_t))
        if val_loss < best_loss - 1e-6:
            best_loss, best_epoch, best_state, bad = val_loss, epoch, copy.deepcopy(head.state_dict()), 0
        else:
            bad += 1
            if bad >= config.patience:
                break
    head.load_state_dict(best_state)
    head.eval()
    return FittedProbe(head, mean, std, best_epoch, time.perf_counter() - started)
