"""Approximate nearest-neighbour search over listing embeddings (Annoy, angular), and exact search.

Angular distance d between unit vectors relates to cosine similarity by cos = 1 - d^2 / 2.

At scale (500k listings x 1280 dims: 2.6 GB of vectors) the build reads the embeddings in chunks of
``ADD_CHUNK_ROWS`` rows, so ``listing_embeddings.npy`` (read by ``NpyRows``) is never in memory whole, and
``write_index`` builds with Annoy's ``on_disk_build``: Annoy's nodes (every vector again, plus the trees)
live in the index file's mapping, pages the kernel can write back and drop, instead of anonymous memory
that an in-memory build holds until ``save`` writes it all out a second time. Same items, same seed, same
trees: the index answers exactly as one built in memory (tests/test_scale_steps.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from annoy import AnnoyIndex

from gallery_core.artifacts.store import atomic_path
from gallery_core.config import IndexConfig
from gallery_core.vectors import top_k

# Rows read from an on-disk embedding array at a time while adding items: ~50 MB at 1280 dims.
ADD_CHUNK_ROWS = 10_000


def build_index(embeddings: np.ndarray, config: IndexConfig, seed: int = 0,
                on_disk_path: str | Path | None = None) -> AnnoyIndex:
    """Build an angular Annoy index over (N, D) vectors (an array or ``NpyRows``, read in chunks); item i
    is row i. With ``on_disk_path`` Annoy builds straight into that file (``write_index`` does it atomically)."""
    if embeddings.ndim != 2 or len(embeddings) == 0:
        raise ValueError(f"expected a non-empty (N, D) array, got shape {embeddings.shape}")
    index = AnnoyIndex(embeddings.shape[1], "angular")
    index.set_seed(seed)
    if on_disk_path is not None:
        index.on_disk_build(str(on_disk_path))  # before any add_item, as Annoy requires
    for start in range(0, len(embeddings), ADD_CHUNK_ROWS):
        chunk = np.asarray(embeddings[start:start + ADD_CHUNK_ROWS], dtype=np.float32)  # (chunk, D)
        for i, vector in enumerate(chunk, start=start):
            index.add_item(i, vector)
    index.build(config.n_trees, n_jobs=1)
    return index


def write_index(embeddings: np.ndarray, config: IndexConfig, path: str | Path, seed: int = 0) -> None:
    """Build the index of (N, D) vectors into ``path`` with Annoy's on-disk build, atomically (what the
    build's index step should call, with ``NpyRows`` embeddings read from disk in chunks)."""
    with atomic_path(path) as tmp:
        index = build_index(embeddings, config, seed, on_disk_path=tmp)
        index.unload()  # the file is complete; release its mapping before the rename


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
