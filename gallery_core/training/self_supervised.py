"""Label-free objectives that keep the gallery embedding general: gallery completion, distillation, spread.

Gallery completion is the product's own retrieval question asked as a training signal: two disjoint halves
of one listing's photos should find each other among the batch's listings. Each gallery of the batch with at
least two photos is dealt at random into two halves; each half is mean-pooled like a gallery (so a half is a
gallery in the same space, as a set of seed photos is); InfoNCE (van den Oord et al. 2018) pulls the two
halves of a listing together and pushes them from the batch's other listings, both ways round. Under torchrun
each rank contrasts the galleries of its own share of the batch (as each rank samples its own triplets), so a DDP
run with this objective on is not the one-process run to rounding, as it is with the attribute heads alone.

Distillation (Learning without Forgetting, Li & Hoiem 2016; Li, Liu & Bilen 2021's universal representations)
pulls each photo's fine-tuned backbone features toward the frozen pretrained backbone's features of the same
input, by 1 - cosine, so fine-tuning on the trained tasks does not wipe what ImageNet taught the top.

Spread keeps the listing embedding's variance over many directions (a high effective rank, RankMe, Garrido et al.
2023): fine-tuning on a few attributes concentrates it on the directions those attributes need (participation ratio
~20 against ImageNet's 30), and a task added later may need the others. The loss is the log of the largest
participation ratio the rows allow over the one they have, computed from their Gram matrix (no eigenvalues). A batch
holds a handful of listings, too few to see a spectrum, so the batch's listing embeddings are scored together with
those of the epoch's earlier batches (detached, a first-in first-out memory as MoCo's; He et al. 2020): the gradient
moves this batch's listings into the directions the memory leaves empty. The memory starts empty every epoch, so a run
resumed at an epoch's checkpoint is the uninterrupted run.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from gallery_core.vectors import group_mean


def split_halves(owner: np.ndarray, n_galleries: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Deal each gallery's photos at random into two disjoint halves.

    ``owner`` (P,): each photo's gallery in [0, n_galleries). Returns ``half`` (P,) 0 or 1 (a gallery of k
    photos has k // 2 in half 0 and the rest in half 1) and ``usable`` (n_galleries,): galleries with >= 2
    photos, the only ones whose halves are both non-empty.
    """
    owner = np.asarray(owner, dtype=np.int64)
    sizes = np.bincount(owner, minlength=n_galleries)
    order = np.lexsort((rng.random(len(owner)), owner))  # by gallery, shuffled within each
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rank = np.empty(len(owner), dtype=np.int64)
    rank[order] = np.arange(len(owner)) - starts[owner[order]]  # position within its gallery, at random
    return (rank >= sizes[owner] // 2).astype(np.int64), sizes >= 2


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE: row i of ``a`` (N, D) should match row i of ``b`` (N, D) among all N rows."""
    a, b = F.normalize(a.float(), dim=-1), F.normalize(b.float(), dim=-1)
    logits = a @ b.T / temperature  # (N, N)
    target = torch.arange(len(a), device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def completion_loss(photo_embeddings: torch.Tensor, gallery_ids: torch.Tensor, n_galleries: int,
                    temperature: float, rng: np.random.Generator) -> tuple[torch.Tensor, int]:
    """Photo embeddings (P, D) of ``n_galleries`` galleries -> (InfoNCE between their halves, galleries used).

    Galleries with one photo take no part; with fewer than two usable galleries there is nothing to contrast
    and the loss is zero (still in the graph) with a count of 0, as a task without labels in a batch."""
    owner = gallery_ids.cpu().numpy()
    half, usable = split_halves(owner, n_galleries, rng)
    if usable.sum() < 2:
        return photo_embeddings.sum() * 0.0, 0
    keep = torch.from_numpy(usable[owner]).to(photo_embeddings.device)
    in_half = torch.from_numpy(half).to(photo_embeddings.device)
    rows = torch.from_numpy(np.flatnonzero(usable)).to(photo_embeddings.device)
    pooled = [group_mean(photo_embeddings[keep & (in_half == h)], gallery_ids[keep & (in_half == h)],
                         n_galleries)[rows] for h in (0, 1)]  # 2 x (N, D)
    return info_nce(pooled[0], pooled[1], temperature), int(usable.sum())


def distillation_loss(features: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Mean over photos of 1 - cosine(fine-tuned features (P, F), pretrained features (P, F)), and how many
    photos it took. A photo whose pretrained features are all zero (possible on tiny photos: every channel
    clipped by the last ReLU) has no direction to keep and takes no part."""
    target = target.float().detach()
    keep = target.norm(dim=-1) > 0
    n = int(keep.sum())
    if n == 0:
        return features.sum() * 0.0, 0
    return (1.0 - F.cosine_similarity(features[keep].float(), target[keep], dim=-1)).mean(), n


def participation_loss(rows: torch.Tensor, memory: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
    """log(largest possible / actual participation ratio) of ``rows`` (N, D) scored together with ``memory``
    (M, D, no gradient): >= 0, 0 when the centred rows' variance is spread evenly over N + M - 1 directions.

    The participation ratio (sum of covariance eigenvalues)^2 / sum of their squares is tr(G)^2 / ||G||_F^2 for
    the centred rows' Gram matrix G ((N + M)^2, cheap for a batch and a memory of a few hundred rows)."""
    x = rows.float() if memory is None else torch.cat([rows.float(), memory.float()])
    n = len(x)
    if n < 3:
        return rows.sum() * 0.0, 0
    centred = x - x.mean(dim=0)
    gram = centred @ centred.T  # (n, n): its eigenvalues are the covariance's times (n - 1)
    ratio = gram.diagonal().sum() ** 2 / (gram.square().sum() + 1e-12)
    return torch.log((n - 1) / (ratio + 1e-12)).clamp_min(0.0), len(rows)


class EmbeddingMemory:
    """The last ``size`` listing embeddings seen in training (detached), first in first out; ``reset`` per epoch."""

    def __init__(self, size: int):
        if size < 1:
            raise ValueError(f"memory size must be >= 1, got {size}")
        self.size = size
        self._rows: list[torch.Tensor] = []
        self.epoch: int | None = None

    def reset(self, epoch: int) -> None:
        self._rows, self.epoch = [], epoch

    def rows(self) -> torch.Tensor | None:
        return torch.cat(self._rows) if self._rows else None

    def push(self, rows: torch.Tensor) -> None:
        self._rows.append(rows.detach().float())
        while sum(len(r) for r in self._rows) > self.size:
            self._rows.pop(0)  # oldest batch first
