"""Vector primitives every step shares: L2 normalisation, the per-group mean, exact top-k.

One copy of each, so retrieval, training, the build and the evaluation rank and pool the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np

EPS = 1e-12  # floor on a norm: a zero vector stays zero instead of becoming NaN


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` (..., D) scaled to unit length, as float32 (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), EPS)


def group_mean(values: Any, groups: Any, n_groups: int) -> Any:
    """Mean of the rows of ``values`` (P, D) per group id (P,) in [0, n_groups) -> (n_groups, D).

    A torch tensor stays a tensor on its device and dtype (training pools galleries with it, gradients
    flow); a numpy array is summed in float64 (evaluation means over thousands of photos). Empty groups
    give zeros, never NaN.
    """
    sums = group_sum(values, groups, n_groups)
    if type(values).__module__.startswith("torch"):
        counts = groups.bincount(minlength=n_groups).clamp_min(1).to(values.dtype)
        return sums / counts[:, None]
    groups = np.asarray(groups, dtype=np.int64)
    return sums / np.maximum(np.bincount(groups, minlength=n_groups), 1)[:, None]


def group_sum(values: Any, groups: Any, n_groups: int, out: Any = None) -> Any:
    """Sum of the rows of ``values`` (P, D) per group id (P,) in [0, n_groups) -> (n_groups, D), added into
    ``out`` when given (torch: ``values``' dtype; numpy: float64), so sums can be built chunk by chunk.

    Rows are added in order (``index_add_`` and ``np.add.at`` on the CPU), so sums built chunk by chunk
    into the same ``out`` equal the one-pass sums bit for bit.
    """
    if type(values).__module__.startswith("torch"):
        out = values.new_zeros(n_groups, values.shape[1]) if out is None else out
        return out.index_add_(0, groups, values)
    values, groups = np.asarray(values), np.asarray(groups, dtype=np.int64)
    out = np.zeros((n_groups, values.shape[1]), dtype=np.float64) if out is None else out
    np.add.at(out, groups, values)
    return out


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k highest scores along the last axis, best first: ``scores`` (N,) -> (k,), or
    (Q, N) -> (Q, k); k is capped at N. Linear time (a partition, then a sort of the k); equal scores
    among those returned are ordered by position, so a result is deterministic for given scores."""
    scores = np.asarray(scores)
    k = min(int(k), scores.shape[-1])
    if k <= 0:
        return np.zeros(scores.shape[:-1] + (0,), dtype=np.int64)
    top = np.argpartition(-scores, k - 1, axis=-1)[..., :k]
    top_scores = np.take_along_axis(scores, top, axis=-1)
    order = np.lexsort((top, -top_scores), axis=-1)
    return np.take_along_axis(top, order, axis=-1).astype(np.int64)
