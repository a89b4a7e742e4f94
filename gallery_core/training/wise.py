"""The end of training: mix the fine-tuned backbone with its pretrained weights (WiSE-FT), then refit the heads.

With ``TrainConfig.wise_alpha < 1`` the best epoch's backbone top becomes ``(1 - alpha) * pretrained + alpha *
fine-tuned`` (``gallery_core.models.interpolate``), its BatchNorm statistics are recomputed on the training
listings' photos, and the task heads, which were fitted to the fine-tuned features, are refitted to the
mixed ones with the encoder frozen (warm-started from their trained weights, early stopping on the
validation listings). The checkpoint then holds the mixed encoder and the refitted heads, so every later
step (embed, the index, the map, predictions, uploads) uses one encoder, and the heads read the same
embedding that new tasks read. Why: docs/representation_study.md (2026-12-07).
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from gallery_core.config import BuildConfig
from gallery_core.models.backbones import create_backbone
from gallery_core.models.encoder import GalleryModel, task_loss
from gallery_core.models.interpolate import interpolate_backbone, recalibrate_batchnorm
from gallery_core.training.data import GalleryData
from gallery_core.weighting import PseudoUniformWeighting

logger = logging.getLogger(__name__)

# Photos whose trunk features recompute the mixed network's BatchNorm statistics: enough for stable
# estimates of a few hundred channels (the demo has ~21k training photos; 4,096 take seconds on 2 cores).
RECALIBRATION_PHOTOS = 4096
HEAD_REFIT_EPOCHS = 100
HEAD_REFIT_PATIENCE = 5
HEAD_REFIT_LR = 1e-3


def _listing_batches(data: GalleryData, listing_idx: np.ndarray, batch_size: int,
                     device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor, int, bool]]:
    for start in range(0, len(listing_idx), batch_size):
        idx = listing_idx[start:start + batch_size]
        inputs, gallery_ids, from_trunk = data.batch(idx, device)
        yield inputs, gallery_ids, len(idx), from_trunk


@torch.no_grad()
def pooled_embeddings(model: GalleryModel, data: GalleryData, device: torch.device,
                      batch_size: int = 64) -> torch.Tensor:
    """Every listing's gallery embedding (the heads' input) with the encoder as it is: (L, D) float32."""
    model.eval()
    chunks = [model.encoder(inputs, ids, n, from_trunk).float()
              for inputs, ids, n, from_trunk in _listing_batches(data, np.arange(data.n_listings), batch_size, device)]
    return torch.cat(chunks) if chunks else torch.zeros((0, model.encoder.embed_dim))


def mix_encoder(model: GalleryModel, config: BuildConfig, data: GalleryData, train_idx: np.ndarray,
                device: torch.device, alpha: float, seed: int) -> int:
    """Replace ``model``'s backbone top by its mix with the pretrained weights; recompute BatchNorm statistics
    on up to ``RECALIBRATION_PHOTOS`` training photos (not at alpha 0 or 1). Returns the photos used."""
    pretrained = create_backbone(config.model.backbone, config.model.trainable_stages, config.model.weights_path,
                                 pretrained=True, freeze_batchnorm=config.model.freeze_batchnorm).to(device)
    mixed = interpolate_backbone(pretrained, model.encoder.backbone, alpha)
    model.encoder.backbone = mixed
    if alpha in (0.0, 1.0):
        return 0
    rng = np.random.default_rng(seed)
    order = rng.permutation(train_idx)
    sizes = data.photo_offsets[order + 1] - data.photo_offsets[order]
    chosen = order[:max(1, int(np.searchsorted(np.cumsum(sizes), RECALIBRATION_PHOTOS)) + 1)]

    def trunk_inputs() -> Iterator[torch.Tensor]:
        for inputs, _, _, from_trunk in _listing_batches(data, np.sort(chosen), 32, device):
            yield inputs if from_trunk else mixed.forward_trunk(inputs)

    return recalibrate_batchnorm(mixed.top, trunk_inputs())


def refit_heads(model: GalleryModel, embeddings: torch.Tensor, labels: dict[str, torch.Tensor],
                train_idx: np.ndarray, val_idx: np.ndarray, scale: PseudoUniformWeighting, batch_size: int,
                seed: int) -> dict[str, Any]:
    """Train the heads alone on fixed gallery embeddings (L, D), from their current weights; keep the epoch
    with the best validation objective (the pseudo-uniformly scaled sum of task losses, as training's)."""
    heads = model.heads
    weights = scale.weights()
    optimizer = torch.optim.Adam(heads.parameters(), lr=HEAD_REFIT_LR)
    generator = torch.Generator().manual_seed(seed)
    x = embeddings.to(next(heads.parameters()).device)

    def objective(rows: np.ndarray) -> torch.Tensor:
        outputs = heads(x[rows])
        total = x.new_zeros(())
        for name, out in outputs.items():
            loss, n = task_loss(heads.heads[name].task, out, labels[name][rows].to(x.device))
            if n:
                total = total + weights[name] * loss
        return total

    with torch.no_grad():
        heads.eval()
        best, best_epoch, best_state, bad = float(objective(val_idx)), 0, copy.deepcopy(heads.state_dict()), 0
    start_objective = best
    for epoch in range(1, HEAD_REFIT_EPOCHS + 1):
        heads.train()
        order = train_idx[torch.randperm(len(train_idx), generator=generator).numpy()]
        for start in range(0, len(order), batch_size):
            loss = objective(order[start:start + batch_size])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        heads.eval()
        with torch.no_grad():
            val = float(objective(val_idx))
        if val < best - 1e-6:
            best, best_epoch, best_state, bad = val, epoch, copy.deepcopy(heads.state_dict()), 0
        else:
            bad += 1
            if bad >= HEAD_REFIT_PATIENCE:
                break
    heads.load_state_dict(best_state)
    heads.eval()
    return {"val_objective_before": start_objective, "val_objective": best, "best_epoch": best_epoch}


def finish_with_wise(model: GalleryModel, config: BuildConfig, data: GalleryData, labels: dict[str, torch.Tensor],
                     train_idx: np.ndarray, val_idx: np.ndarray, scale: PseudoUniformWeighting,
                     device: torch.device) -> dict[str, Any]:
    """Mix the encoder (``config.train.wise_alpha``) and refit the heads; returns what the checkpoint records."""
    alpha = config.train.wise_alpha
    photos = mix_encoder(model, config, data, train_idx, device, alpha, config.train.seed)
    embeddings = pooled_embeddings(model, data, device)  # (L, D)
    refit = refit_heads(model, embeddings, labels, train_idx, val_idx, scale, 64, config.train.seed)
    logger.info(f"WiSE-FT alpha {alpha}: BatchNorm statistics from {photos} training photos; heads refitted "
                f"(validation objective {refit['val_objective_before']:.4f} -> {refit['val_objective']:.4f}, "
                f"best refit epoch {refit['best_epoch']})")
    if not math.isfinite(refit["val_objective"]):
        raise RuntimeError("refitting the heads on the mixed encoder gave a non-finite validation objective")
    return {"alpha": alpha, "recalibration_photos": photos, **refit}
