"""2-D map of the listings: UMAP over listing embeddings, fit once at build time.

(UMAP's ``transform`` of a new point takes seconds, so the app never calls it live.)

At scale UMAP is fit on a seeded random sample of ``ProjectionConfig.fit_sample`` listings and the
others are placed with ``transform`` in batches of ``transform_batch``. Why this method: UMAP's fit
holds a k-nearest-neighbour graph and optimises every point together, so its memory and time grow with
all N points (and its nearest-neighbour descent wants the whole (N, D) array in memory); ``transform``
places each new point against the fitted sample's embedding only, so memory stays at one batch plus
the fitted model, time is linear in N, and the embeddings stay on disk. The map keeps its
neighbourhoods (trustworthiness, tests/test_scale_steps.py); a listing placed by ``transform`` lands
among its neighbours in the sample, which at 20,000 points covers every group of more than a few
hundredths of a percent of the catalogue. ``benchmarks/bench_scale.py`` measures it against UMAP on
all points. The default ``fit_sample`` is above the demo's 2,000 listings, which are fit on all of them
exactly as before (the demo's map does not change).

Deterministic for a seed: single-threaded UMAP, a seeded sample, and ``transform``'s own fixed seed
(the result depends on ``transform_batch``, which is why it is a config field).
"""

from __future__ import annotations

import warnings

import numpy as np
from tqdm.auto import tqdm

from gallery_core.config import ProjectionConfig
from gallery_core.errors import UsageError


def _reducer(config: ProjectionConfig, n: int, seed: int):  # -> umap.UMAP
    import umap  # imported here: numba's start-up is slow and only this step needs it

    n_neighbors = min(config.n_neighbors, n - 1)
    return umap.UMAP(n_neighbors=n_neighbors, min_dist=config.min_dist, metric=config.metric,
                     random_state=seed, n_components=2, init="spectral" if n > n_neighbors + 2 else "random")


def fit_projection(embeddings: np.ndarray, config: ProjectionConfig, seed: int = 0,
                   progress: bool = False) -> np.ndarray:
    """(N, D) embeddings (``NpyRows`` on disk is read a batch at a time above ``fit_sample``) -> (N, 2)
    float32 coordinates. Deterministic for a seed (single-threaded)."""
    n = len(embeddings)
    if n < 3:
        raise UsageError(f"need at least 3 listings for a 2-D map, got {n}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # n_jobs overridden by random_state; spectral init fallbacks
        if n <= config.fit_sample:
            return np.asarray(_reducer(config, n, seed).fit_transform(np.asarray(embeddings)), dtype=np.float32)
        sample = np.sort(np.random.default_rng(seed).choice(n, size=config.fit_sample, replace=False))  # (S,)
        reducer = _reducer(config, len(sample), seed).fit(np.asarray(embeddings[sample], dtype=np.float32))
        coords = np.empty((n, 2), dtype=np.float32)  # (N, 2)
        coords[sample] = reducer.embedding_
        rest = np.setdiff1d(np.arange(n), sample)  # (N - S,) sorted: each batch reads rows in file order
        for start in tqdm(range(0, len(rest), config.transform_batch), desc="map: placing listings",
                          disable=not progress):
            rows = rest[start:start + config.transform_batch]
            coords[rows] = reducer.transform(np.asarray(embeddings[rows], dtype=np.float32))
    return coords
