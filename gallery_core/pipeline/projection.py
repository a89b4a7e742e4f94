"""2-D map of the listings: UMAP over listing embeddings, fit once at build time.

(UMAP's ``transform`` of a new point takes seconds, so the app never calls it live.)
"""

from __future__ import annotations

import warnings

import numpy as np

from gallery_core.config import ProjectionConfig
from gallery_core.errors import UsageError


def fit_projection(embeddings: np.ndarray, config: ProjectionConfig, seed: int = 0) -> np.ndarray:
    """(N, D) embeddings -> (N, 2) float32 coordinates. Deterministic for a seed (single-threaded)."""
    n = len(embeddings)
    if n < 3:
        raise UsageError(f"need at least 3 listings for a 2-D map, got {n}")
    import umap  # imported here: numba's start-up is slow and only this step needs it

    n_neighbors = min(config.n_neighbors, n - 1)
    reducer = umap.UMAP(n_neighbors=n_neighbors, min_dist=config.min_dist, metric=config.metric,
                        random_state=seed, n_components=2, init="spectral" if n > n_neighbors + 2 else "random")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # n_jobs overridden by random_state; spectral init fallbacks
        coords = reducer.fit_transform(embeddings)
    return np.asarray(coords, dtype=np.float32)
