"""The objectives beside the attribute heads: triplet ranking, VAE, gallery completion, distillation to the
pretrained backbone, and augmentation.

All are optional (``TrainConfig.triplet_weight``, ``vae_weight``, ``completion_weight``, ``distill_weight``,
``spread_weight``, ``augment``); gallery completion alone is on by default (config.py says why). ``Objectives``
holds what they need, and ``objectives_batch`` runs one batch with them, returning their losses for ``run_epoch`` to
add to the weighting as further named tasks ("triplet", "vae", "completion", "distill", "spread"). The
self-supervised ones live in ``training/self_supervised.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from gallery_core.config import OBJECTIVE_REFERENCE_TASKS, BuildConfig, TrainConfig
from gallery_core.data.photos import to_model_input
from gallery_core.engine.features import pretrained_backbone
from gallery_core.models.backbones import Backbone
from gallery_core.models.encoder import GalleryModel
from gallery_core.models.vae import cached_thumbnails, thumbnails_to_tensor, vae_loss
from gallery_core.training.augment import Augmenter
from gallery_core.training.data import GalleryData
from gallery_core.training.self_supervised import (
    EmbeddingMemory,
    completion_loss,
    distillation_loss,
    participation_loss,
)
from gallery_core.training.triplets import (
    LevelTable,
    MiningConfig,
    attribute_codes,
    mine_levels,
    triplet_margin_loss,
)
from gallery_core.vectors import group_mean


@dataclass
class Objectives:
    """What training needs beyond the attribute heads (each part None when its objective is off)."""

    train_levels: LevelTable | None = None  # mined triplet candidates among the training listings
    val_levels: LevelTable | None = None  # among the validation listings (validation loss only)
    margin: float = 0.2
    thumbnails: np.ndarray | None = None  # VAE targets (n_photos, 3, S, S) uint8, rows = data's photo rows
    augmenter: Augmenter | None = None
    completion_temperature: float | None = None  # the completion objective's, None when it is off
    teacher: Backbone | None = None  # the pretrained backbone that distillation pulls toward (eval, frozen)
    memory: EmbeddingMemory | None = None  # the spread objective's earlier listing embeddings of the epoch
    seed: int = 0

    @property
    def names(self) -> list[str]:
        return (["triplet"] if self.train_levels is not None else []) + \
            (["vae"] if self.thumbnails is not None else []) + \
            (["completion"] if self.completion_temperature is not None else []) + \
            (["distill"] if self.teacher is not None else []) + \
            (["spread"] if self.memory is not None else [])


EXTRA_OBJECTIVES = ("triplet", "vae", "completion", "distill", "spread")  # each weighted by TrainConfig.<name>_weight


def objective_weights(config: TrainConfig, n_tasks: int | None = None) -> dict[str, float]:
    """The extra objectives a config turns on -> their weight in the loss weighting. ``n_tasks``: the attribute
    tasks they train beside; below ``OBJECTIVE_REFERENCE_TASKS`` every weight shrinks in proportion, since the
    weights were set against the attribute objective (a sum over tasks) of that many (None: as configured)."""
    scale = 1.0 if n_tasks is None else min(1.0, n_tasks / OBJECTIVE_REFERENCE_TASKS)
    configured = {name: getattr(config, f"{name}_weight") for name in EXTRA_OBJECTIVES}
    return {name: weight * scale for name, weight in configured.items() if weight > 0}


def attributes_only(config: TrainConfig) -> TrainConfig:
    """``config`` with every extra objective off: the attribute heads alone (augmentation, a data transform,
    stays). What the evaluation's models of one task train (its end-to-end and single-task baselines), as the
    paper's end-to-end baseline does: the task alone."""
    return replace(config, **{f"{name}_weight": 0.0 for name in objective_weights(config)})


def prepare_objectives(config: BuildConfig, data: GalleryData, train_idx: np.ndarray, val_idx: np.ndarray,
                       cache_dir: Path) -> Objectives | None:
    """Mine triplet levels (offline, training tasks' columns only, each split among itself), decode
    the VAE's thumbnails (cached), load the pretrained teacher for distillation and set up augmentation;
    None when all are off."""
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
    if t.completion_weight > 0:
        objectives.completion_temperature = t.completion_temperature
    if t.distill_weight > 0:  # always ImageNet's weights, also when training resumes from fine-tuned ones
        objectives.teacher = pretrained_backbone(config.model).requires_grad_(False)
    if t.spread_weight > 0:
        objectives.memory = EmbeddingMemory(t.spread_memory)
    if t.augment:
        objectives.augmenter = Augmenter(config.model.image_size, seed=t.seed)
    return objectives


def objectives_batch(model: GalleryModel, data: GalleryData, idx: np.ndarray, objectives: Objectives,
                     training: bool, epoch: int, rng: np.random.Generator, device: torch.device, use_amp: bool,
                     ) -> tuple[dict[str, torch.Tensor], dict[str, tuple[torch.Tensor, int]]]:
    """One batch with the extra objectives -> (head outputs for ``idx``, {objective: (loss, count)}).

    Each listing of ``idx`` anchors one sampled triplet; its positive and negative galleries join the
    forward pass (the heads still see only ``idx``, so the attribute objective is unchanged). The VAE
    reconstructs the photos of ``idx``; completion contrasts two disjoint halves of each gallery of ``idx``;
    distillation compares every photo of the pass with the pretrained backbone's features of the same input;
    augmentation corrupts every photo of the pass when training.
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
        pixels = objectives.augmenter.pixels(paths, rows, epoch)
        inputs = to_model_input(pixels, model.encoder.backbone).to(device)
        gallery_ids, from_trunk = torch.from_numpy(owner).to(device), False
    else:
        inputs, gallery_ids, from_trunk = data.batch(galleries, device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
        features = model.encoder.photo_features(inputs, from_trunk)  # (P, F)
        photo_embeddings = model.encoder.projection(features)  # (P, D)
        embedding = group_mean(photo_embeddings, gallery_ids, len(galleries))  # (G, D)
        outputs = model.heads(embedding[:len(idx)])
    extra: dict[str, tuple[torch.Tensor, int]] = {}
    if objectives.completion_temperature is not None:
        own = gallery_ids < len(idx)
        extra["completion"] = completion_loss(photo_embeddings[own], gallery_ids[own], len(idx),
                                              objectives.completion_temperature, rng)
    if objectives.teacher is not None:
        teacher = objectives.teacher.to(device)
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            target = teacher.forward_top(inputs) if from_trunk else teacher(inputs)  # (P, F)
        extra["distill"] = distillation_loss(features, target)
    if objectives.memory is not None:
        if objectives.memory.epoch != epoch:
            objectives.memory.reset(epoch)
        extra["spread"] = participation_loss(embedding[:len(idx)], objectives.memory.rows())
        if training:
            objectives.memory.push(embedding[:len(idx)])
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
