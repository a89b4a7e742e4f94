"""Approximate nearest-neighbour search over listing embeddings (Annoy, angular), and exact search.

Angular distance d between unit vectors relates to cosine similarity by cos = 1 - d^2 / 2.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from annoy import AnnoyIndex

from gallery_core.artifacts.store import atomic_path
from gallery_core.config import IndexConfig
from gallery_core.vectors import top_k


def build_index(embeddings: np.ndarray, config: IndexConfig, seed: int = 0) -> AnnoyIndex:
    """Build an angular Annoy index over (N, D) vectors; item i is row i."""
    if embeddings.ndim != 2 or len(embeddings) == 0:
        raise ValueError(f"expected a non-empty (N, D) array, got shape {embeddings.shape}")
    index = AnnoyIndex(embeddings.shape[1], "angular")
    index.set_seed(seed)
    for i, vector in enumerate(embeddings):
        index.add_item(i, vector)
    index.build(config.n_trees, n_jobs=1)
    return index


def save_index(index: AnnoyIndex, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        index.save(str(tmp), prefault=False)
        index.unload()  # the saved copy is now memory-mapped from tmp; release it before the rename


def load_index(path: str | Path, dim: int) -> AnnoyIndex:
    index = AnnoyIndex(dim, "angular")
    index.load(str(path))
    return index


def angular_to_cosine(distances: np.ndarray) -> np.ndarray:
    return 1.0 - np.asarray(distances, dtype=np.float32) ** 2 / 2.0


def query_index(index: AnnoyIndex, vector: np.ndarray, k: int, search_k: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Top-k rows for one query vector: (rows (k,), cosine similarities (k,)), best first."""
    rows, distances = index.get_nns_by_vector(np.asarray(vector, dtype=np.float32).tolist(), k,
                                              search_k=search_k, include_distances=True)
    return np.asarray(rows, dtype=np.int64), angular_to_cosine(distances)


def exact_search(embeddings: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by cosine similarity (a matrix product); embeddings and queries L2-normalised.
    Returns (rows (Q, k), similarities (Q, k))."""
    similarities = queries @ embeddings.T  # (Q, N)
    rows = top_k(similarities, k)
    return rows, np.take_along_axis(similarities, rows, axis=1)
