"""The gallery encoder and its task heads.

Photos of a batch of galleries go through the backbone as one flat batch (P photos); a segment
mean pools each gallery's photos (permutation invariant, any gallery length) into the gallery
embedding. By default the heads read the pooled backbone features directly, as in the paper; an
optional linear projection (``embed_dim > 0``) maps them to fewer dimensions first. Because the
projection is affine, projecting each photo and then averaging equals averaging then projecting:
photo embeddings and gallery embeddings live in one space, so a set of seed photos is itself a gallery.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gallery_core.data.tasks import TaskSpec
from gallery_core.models.backbones import Backbone
from gallery_core.vectors import group_mean


class GalleryEncoder(nn.Module):
    """``embed_dim`` 0: no projection, the embedding is the pooled backbone output (feature_dim)."""

    def __init__(self, backbone: Backbone, embed_dim: int = 0):
        super().__init__()
        self.backbone = backbone
        self.projection = nn.Linear(backbone.feature_dim, embed_dim) if embed_dim else nn.Identity()

    @property
    def embed_dim(self) -> int:
        return self.projection.out_features if isinstance(self.projection, nn.Linear) else self.backbone.feature_dim

    def photo_features(self, photos: torch.Tensor, from_trunk: bool = False) -> torch.Tensor:
        """Pixels (P, 3, H, W), or cached trunk features when ``from_trunk`` -> backbone features (P, F)."""
        return self.backbone.forward_top(photos) if from_trunk else self.backbone(photos)

    def embed_photos(self, photos: torch.Tensor, from_trunk: bool = False) -> torch.Tensor:
        """Pixels (P, 3, H, W), or cached trunk features when ``from_trunk`` -> photo embeddings (P, D)."""
        return self.projection(self.photo_features(photos, from_trunk))

    def forward(self, photos: torch.Tensor, gallery_ids: torch.Tensor, n_galleries: int,
                from_trunk: bool = False) -> torch.Tensor:
        """Photos of ``n_galleries`` galleries, ``gallery_ids`` (P,) saying whose each is -> (G, D)."""
        return group_mean(self.embed_photos(photos, from_trunk), gallery_ids, n_galleries)


class TaskHead(nn.Module):
    """Two layers: Linear -> ReLU -> Linear. Outputs logits (classification) or values (regression).

    Regression heads predict ``mean + std * output`` with the training labels' mean and std, so a
    fresh head starts at the label mean whatever the unit (euros, km); the loss is still the MSE on
    the original scale, as in the paper.
    """

    def __init__(self, task: TaskSpec, embed_dim: int, hidden: int):
        super().__init__()
        self.task = task
        self.layers = nn.Sequential(nn.Linear(embed_dim, hidden), nn.ReLU(), nn.Linear(hidden, task.output_dim))
        self.register_buffer("label_mean", torch.zeros(()))
        self.register_buffer("label_std", torch.ones(()))

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        out = self.layers(embedding)  # (G, output_dim)
        if self.task.kind == "multiclass":
            return out
        out = out.squeeze(-1)  # (G,)
        if self.task.kind == "regression":
            out = self.label_mean + self.label_std * out
        return out

    def predict(self, embedding: torch.Tensor) -> torch.Tensor:
        """Probabilities (binary: P(1), multiclass: (G, C)) or regression values."""
        out = self(embedding)
        if self.task.kind == "binary":
            return torch.sigmoid(out)
        if self.task.kind == "multiclass":
            return torch.softmax(out, dim=-1)
        return out


class MultiTaskHeads(nn.Module):
    """One head per task, optionally behind a shared MLP projector (``projector`` units, Linear -> ReLU; Wang
    et al. 2022, "Revisiting the transferability of supervised pretraining"): the heads then read the
    projector's output, so what is specific to the trained tasks can settle there while the gallery embedding
    (the projector's input, what a run exports) keeps more of what other tasks need. 0 = no projector."""

    def __init__(self, tasks: tuple[TaskSpec, ...], embed_dim: int, hidden: int, projector: int = 0):
        super().__init__()
        self.tasks = tasks
        self.projector = nn.Sequential(nn.Linear(embed_dim, projector), nn.ReLU()) if projector else nn.Identity()
        self.heads = nn.ModuleDict({t.name: TaskHead(t, projector or embed_dim, hidden) for t in tasks})

    def project(self, embedding: torch.Tensor) -> torch.Tensor:
        """Gallery embeddings (G, D) -> what every head reads (G, projector or D)."""
        return self.projector(embedding)

    def forward(self, embedding: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.project(embedding)
        return {name: head(z) for name, head in self.heads.items()}

    def predict(self, embedding: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each head's ``TaskHead.predict`` (probabilities or values) for gallery embeddings (G, D)."""
        z = self.project(embedding)
        return {name: head.predict(z) for name, head in self.heads.items()}

    def set_label_scale(self, name: str, mean: float, std: float) -> None:
        head = self.heads[name]
        head.label_mean.fill_(mean)
        head.label_std.fill_(max(std, 1e-6))


def task_loss(task: TaskSpec, output: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """One task's mean loss over the observed labels, and how many there were.

    ``labels``: float with NaN for missing (binary, regression) or int64 with -1 (multiclass).
    Missing labels contribute nothing; a batch with none gives a zero loss (still in the graph).
    """
    observed = labels >= 0 if task.kind == "multiclass" else ~torch.isnan(labels)
    n = int(observed.sum())
    if n == 0:
        return output.sum() * 0.0, 0
    out, y = output[observed], labels[observed]
    if task.kind == "binary":
        return F.binary_cross_entropy_with_logits(out.float(), y.float()), n
    if task.kind == "multiclass":
        return F.cross_entropy(out.float(), y), n
    return F.mse_loss(out.float(), y.float()), n


class GalleryModel(nn.Module):
    """Encoder + heads: what training optimises and what a checkpoint stores.

    ``decoder`` (optional, ``gallery_core.models.vae.VAEDecoder``) is the VAE objective's decoder from photo
    embeddings; it is part of the model so its weights live in the checkpoint. None adds no weights.
    """

    def __init__(self, encoder: GalleryEncoder, heads: MultiTaskHeads, decoder: nn.Module | None = None):
        super().__init__()
        self.encoder = encoder
        self.heads = heads
        self.decoder = decoder

    def forward(self, photos: torch.Tensor, gallery_ids: torch.Tensor, n_galleries: int,
                from_trunk: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        embedding = self.encoder(photos, gallery_ids, n_galleries, from_trunk)  # (G, D)
        return embedding, self.heads(embedding)
