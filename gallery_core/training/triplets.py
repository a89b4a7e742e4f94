"""Offline multi-attribute triplet mining and the margin ranking loss on gallery embeddings.

The visual-search paper mines triplets from several attributes at once: for an anchor listing, other
listings are sorted into *levels* by the fraction of attributes they share with it (level 0 shares the
most), and a triplet takes its positive from a better level than its negative. Training on triplets
across all level pairs teaches an order ("shares 90% > shares 70% > shares 40%"), not just
same/different, which is what a single-attribute baseline gives.

Mining is offline: before training, every anchor gets a table of candidates per level
(``LevelTable``), drawn from a seeded random pool, so its cost is O(anchors x pool), not O(anchors^2).
Each epoch then samples one (positive, negative) pair per anchor from that table (``sample``).

Missing attributes are masked, as for the attribute heads: the fraction counts only attributes that
both listings record, and a pair sharing fewer than ``min_shared`` recorded attributes is no candidate.
Regression attributes are compared by quantile bin (same bin = shared). Only the training tasks'
columns are used: hold-out columns must never reach training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from gallery_core.data.tasks import TaskSpec, encode_labels, observed_mask

MISSING = -1


@dataclass(frozen=True)
class MiningConfig:
    """How candidates are mined. The default edges come from the demo catalogue (21 attributes): there a
    random pair of listings shares a median 41% of the attributes both record (90th percentile 59%),
    a pair in the same city a median 57%; so level 0 (>= 70%) is about the top 2% of the pool, level 1
    the next ~10%, level 2 the middle and level 3 the least similar half."""

    # Descending thresholds on the shared fraction: level 0 is >= edges[0], level i is
    # [edges[i], edges[i-1]), the last level is < edges[-1]. Three edges = four levels.
    level_edges: tuple[float, ...] = (0.7, 0.55, 0.4)
    pool_size: int = 1024  # random candidates scored per anchor
    per_level: int = 8  # candidates kept per level and anchor
    n_bins: int = 5  # quantile bins of regression attributes
    min_shared: int = 3  # fewer attributes recorded by both: not comparable
    seed: int = 0

    @property
    def n_levels(self) -> int:
        return len(self.level_edges) + 1

    def validate(self) -> MiningConfig:
        edges = np.asarray(self.level_edges, dtype=float)
        if len(edges) < 1 or not np.all((edges > 0) & (edges <= 1)) or np.any(np.diff(edges) >= 0):
            raise ValueError(f"level_edges must be strictly decreasing fractions in (0, 1], got {self.level_edges}")
        for name in ("pool_size", "per_level", "n_bins", "min_shared"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        return self


def attribute_codes(listings: pd.DataFrame, tasks: tuple[TaskSpec, ...], fit_rows: np.ndarray | None = None,
                    n_bins: int = 5) -> np.ndarray:
    """Each listing's attributes as small integers, ``MISSING`` (-1) where not recorded -> (L, T) int64.

    Binary: 0/1; multiclass: class index; regression: quantile bin, with bin edges from ``fit_rows``
    (default all rows) so validation listings cannot move the training bins.
    """
    columns = []
    for task in tasks:
        values = encode_labels(task, listings[task.column])
        observed = observed_mask(task, values)
        codes = np.full(len(values), MISSING, dtype=np.int64)
        if task.kind == "regression":
            rows = np.arange(len(values)) if fit_rows is None else np.asarray(fit_rows)
            reference = values[rows][observed[rows]]
            if len(reference):
                edges = np.unique(np.quantile(reference, np.linspace(0, 1, n_bins + 1)[1:-1]))
                codes[observed] = np.searchsorted(edges, values[observed], side="right")
        else:
            codes[observed] = values[observed].astype(np.int64)
        columns.append(codes)
    return np.stack(columns, axis=1) if columns else np.zeros((len(listings), 0), dtype=np.int64)


def shared_fraction(anchor: np.ndarray, candidates: np.ndarray, min_shared: int = 1) -> np.ndarray:
    """Fraction of attributes recorded by both that are equal: anchor (T,), candidates (C, T) -> (C,).

    NaN where fewer than ``min_shared`` attributes are recorded by both (the pair is not comparable).
    """
    both = (anchor[None, :] != MISSING) & (candidates != MISSING)  # (C, T)
    n_both = both.sum(axis=1)
    equal = (both & (candidates == anchor[None, :])).sum(axis=1)
    fraction = equal / np.maximum(n_both, 1)
    return np.where(n_both >= min_shared, fraction, np.nan)


def level_of(fraction: np.ndarray, level_edges: tuple[float, ...]) -> np.ndarray:
    """Level of each shared fraction (0 = shares the most), -1 for NaN (not comparable)."""
    fraction = np.asarray(fraction, dtype=float)
    edges = np.asarray(level_edges, dtype=float)
    # Number of edges the fraction falls below: >= edges[0] -> 0, < edges[-1] -> len(edges).
    levels = (fraction[:, None] < edges[None, :]).sum(axis=1)
    return np.where(np.isnan(fraction), -1, levels).astype(np.int64)


@dataclass
class LevelTable:
    """Mined candidates: ``candidates[i, l]`` holds up to ``per_level`` rows of level ``l`` for anchor
    ``anchors[i]`` (listing rows, -1 padding)."""

    anchors: np.ndarray  # (A,) listing rows
    candidates: np.ndarray  # (A, n_levels, per_level) listing rows, -1 = empty slot
    level_edges: tuple[float, ...]

    @property
    def n_levels(self) -> int:
        return self.candidates.shape[1]

    def counts(self) -> np.ndarray:
        """(A, n_levels) how many candidates each anchor has per level."""
        return (self.candidates >= 0).sum(axis=2)

    def summary(self) -> dict[str, object]:
        counts = self.counts()
        usable = (counts > 0).sum(axis=1) >= 2
        return {"anchors": int(len(self.anchors)), "anchors_with_a_triplet": int(usable.sum()),
                "level_edges": list(self.level_edges),
                "mean_candidates_per_level": [round(float(c), 2) for c in counts.mean(axis=0)],
                "anchors_with_level": [int(c) for c in (counts > 0).sum(axis=0)]}

    def sample(self, anchor_rows: np.ndarray, rng: np.random.Generator,
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One triplet per anchor (listing rows): a random pair of its non-empty levels i < j, a random
        positive of level i and negative of level j.

        Returns (anchor, positive, negative, gap = j - i), leaving out anchors with < 2 non-empty levels.
        """
        position = {int(a): i for i, a in enumerate(self.anchors)}
        out_a, out_p, out_n, out_gap = [], [], [], []
        for anchor in np.asarray(anchor_rows):
            i = position.get(int(anchor))
            if i is None:
                continue
            filled = np.flatnonzero((self.candidates[i] >= 0).any(axis=1))
            if len(filled) < 2:
                continue
            lo, hi = np.sort(rng.choice(filled, size=2, replace=False))
            pos = self.candidates[i, lo][self.candidates[i, lo] >= 0]
            neg = self.candidates[i, hi][self.candidates[i, hi] >= 0]
            out_a.append(int(anchor))
            out_p.append(int(rng.choice(pos)))
            out_n.append(int(rng.choice(neg)))
            out_gap.append(int(hi - lo))
        as_array = lambda v: np.asarray(v, dtype=np.int64)  # noqa: E731
        return as_array(out_a), as_array(out_p), as_array(out_n), as_array(out_gap)


def mine_levels(codes: np.ndarray, rows: np.ndarray, config: MiningConfig = MiningConfig()) -> LevelTable:
    """Mine candidates for every anchor in ``rows`` among the other ``rows`` (e.g. the training listings).

    ``codes`` (L, T) from ``attribute_codes``. Deterministic for ``config.seed``.
    """
    config.validate()
    rows = np.asarray(rows, dtype=np.int64)
    rng = np.random.default_rng(config.seed)
    n_levels, per_level = config.n_levels, config.per_level
    candidates = np.full((len(rows), n_levels, per_level), -1, dtype=np.int64)
    for i, anchor in enumerate(rows):
        others = rows[rows != anchor]
        pool = others if len(others) <= config.pool_size else rng.choice(others, config.pool_size, replace=False)
        levels = level_of(shared_fraction(codes[anchor], codes[pool], config.min_shared), config.level_edges)
        for level in range(n_levels):
            members = pool[levels == level][:per_level]  # the pool is already in random order
            candidates[i, level, :len(members)] = members
    return LevelTable(anchors=rows, candidates=candidates, level_edges=tuple(config.level_edges))


def triplet_margin_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
                        gap: torch.Tensor | None = None, margin: float = 0.2) -> torch.Tensor:
    """Mean hinge ``max(0, d(a, p) - d(a, n) + margin * gap)`` over triplets; embeddings (T, D).

    Distances are squared Euclidean between L2-normalised embeddings (= 2 - 2 cos), the geometry the
    index searches in. The margin grows with the level gap, so a level-0 vs level-3 pair must be
    further apart than a level-0 vs level-1 pair: that is the order the multi-level mining encodes.
    No triplets -> a zero that still belongs to the graph.
    """
    if anchor.shape[0] == 0:
        return anchor.sum() * 0.0
    a, p, n = (F.normalize(x.float(), dim=-1) for x in (anchor, positive, negative))
    d_ap = (a - p).pow(2).sum(dim=-1)  # (T,)
    d_an = (a - n).pow(2).sum(dim=-1)  # (T,)
    scale = torch.ones_like(d_ap) if gap is None else gap.to(d_ap)
    return F.relu(d_ap - d_an + margin * scale).mean()
