"""The retrieval space: photo embeddings PCA-whitened with statistics of the training listings' photos.

A photo embedding ``x`` (D,) becomes ``(x - mean_) @ components_.T`` (k,): centred, rotated onto the
principal axes of the training photos and each axis scaled to unit variance (Jegou & Chum 2012, "Negative
evidences and co-occurrences in image retrieval"). Raw embeddings are dominated by a few directions that every
listing shares (what the trained tasks care about); whitening lets the many smaller directions, which tell
one listing from another, count (docs/representation_study.md: gallery completion recall@10 0.26 raw, 0.46
whitened on the demo).

The transform is affine, so it commutes with the mean: the whitened mean of a gallery's photos is the mean of
its whitened photos. A listing's retrieval vector (``listing_embeddings.npy``), a seed gallery's query and an
uploaded photo's vector are all made the same way: whiten the raw photo embeddings (or their mean), then
L2-normalise. The task heads and new-task probes keep reading the raw embeddings.

Stored in the run as ``retrieval_whitening.npz`` (written atomically, checksummed in the manifest by the embed
step that fits it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gallery_core.artifacts.store import atomic_path

# Dimensions kept by default (EmbedConfig.whitening_dim says why); fewer when the embedding or the fitting sample
# is smaller.
DEFAULT_DIM = 512
# Eigenvalues are floored at this fraction of the largest before the square root: axes with no variance in the
# training photos (numerical noise) would otherwise be blown up into the retrieval space.
EIGEN_FLOOR = 1e-6
# Photos the whitening is fitted on at most (a seeded sample of the training listings' photos): 100k x 1280
# float32 is 0.5 GB; the covariance of more changes nothing that matters.
MAX_FIT_PHOTOS = 100_000


@dataclass(frozen=True)
class Whitening:
    mean_: np.ndarray  # (D,)
    components_: np.ndarray  # (k, D): principal axes divided by the square root of their variance
    explained_variance_: np.ndarray  # (k,)
    n_fit_: int  # photos it was fitted on

    @property
    def dim(self) -> int:
        return int(self.components_.shape[0])

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Raw photo embeddings (n, D) or one (D,) -> whitened (n, k) or (k,), float32, not normalised."""
        x = np.asarray(x, dtype=np.float32)
        if x.shape[-1] != self.mean_.shape[0]:
            raise ValueError(f"embedding has {x.shape[-1]} dims, the whitening was fitted on {self.mean_.shape[0]}")
        return ((x - self.mean_) @ self.components_.T).astype(np.float32)

    def save(self, path: str | Path) -> None:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, mean=self.mean_, components=self.components_, explained_variance=self.explained_variance_,
                     n_fit=np.int64(self.n_fit_))

    @classmethod
    def load(cls, path: str | Path) -> Whitening:
        with np.load(path) as data:
            return cls(data["mean"].astype(np.float32), data["components"].astype(np.float32),
                       data["explained_variance"].astype(np.float32), int(data["n_fit"]))


def fit_whitening(x: np.ndarray, dim: int = DEFAULT_DIM) -> Whitening:
    """PCA whitening fitted on photo embeddings ``x`` (n, D): keeps min(dim, D, n - 1) axes."""
    x = np.asarray(x, dtype=np.float64)
    n, d = x.shape
    if n < 3:
        raise ValueError(f"whitening needs at least 3 photos to fit, got {n}")
    k = max(1, min(dim, d, n - 1))
    mean = x.mean(axis=0)
    covariance = np.cov(x - mean, rowvar=False)  # (D, D)
    values, vectors = np.linalg.eigh(covariance)  # ascending
    order = np.argsort(values)[::-1][:k]
    values, vectors = values[order], vectors[:, order]
    values = np.maximum(values, EIGEN_FLOOR * max(values[0], 1e-12))
    components = (vectors / np.sqrt(values)).T  # (k, D)
    # Fix each axis's sign (eigh's is arbitrary) so a refit on the same photos gives the same vectors.
    signs = np.sign(components[np.arange(k), np.abs(components).argmax(axis=1)])
    components *= np.where(signs == 0, 1, signs)[:, None]
    return Whitening(mean.astype(np.float32), components.astype(np.float32), values.astype(np.float32), n)


def fit_sample(photo_rows: np.ndarray, seed: int, limit: int = MAX_FIT_PHOTOS) -> np.ndarray:
    """At most ``limit`` of ``photo_rows``, a seeded sample, sorted (reads from a file in order)."""
    rows = np.asarray(photo_rows, dtype=np.int64)
    if len(rows) > limit:
        rows = np.random.default_rng(seed).choice(rows, limit, replace=False)
    return np.sort(rows)
