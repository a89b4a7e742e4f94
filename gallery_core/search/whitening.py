"""The retrieval space: photo embeddings whitened with statistics of the training listings' photos.

A photo embedding ``x`` (D,) becomes ``(x - mean_) @ components_.T`` (k,). Raw embeddings are dominated by a
few directions that every listing shares (what the trained tasks care about); whitening lets the many smaller
directions, which tell one listing from another, count. Two ways to fit it (``WHITENING_METHODS``):

- **pca**: rotated onto the principal axes of the training photos, each axis scaled to unit variance (Jegou &
  Chum 2012, "Negative evidences and co-occurrences in image retrieval"); needs no grouping.
- **listings** (the default): learned from the training listings' own photos as matching sets, as Radenovic et
  al. 2018 learn a whitening from matching pairs: scaled so that the photos of one listing vary by unit variance
  in every direction (their within-listing covariance, shrunk toward its mean eigenvalue, becomes the identity),
  then rotated onto the axes along which listings differ most from each other relative to that (the generalised
  eigenvectors of the between-listing covariance of listing means against the within one, LDA's axes), the top
  k kept. The question it is fitted for is the product's own: which listing does this set of photos come from.

docs/representation_study.md has the measurements (gallery completion recall@10 on the demo: raw 0.26, PCA 0.48,
listings higher; chosen on the training listings alone).

The transform is affine, so it commutes with the mean: the whitened mean of a gallery's photos is the mean of
its whitened photos. A listing's retrieval vector (``listing_embeddings.npy``), a seed gallery's query and an
uploaded photo's vector are all made the same way: whiten the raw photo embeddings (or their mean), then
L2-normalise. The task heads and new-task probes keep reading the raw embeddings.

Stored in the run as ``retrieval_whitening.npz`` (written atomically, checksummed in the manifest by the embed
step that fits it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gallery_core.artifacts.store import atomic_path
from gallery_core.config import WHITENING_METHODS, EmbedConfig
from gallery_core.vectors import group_mean

logger = logging.getLogger(__name__)

# Dimensions kept by default per method: WHITENING_METHODS (EmbedConfig.whitening says why); fewer when the embedding
# or the fitting sample is smaller.
DEFAULT_DIM = WHITENING_METHODS["pca"]
# The listings method's within-listing covariance is shrunk toward (its mean eigenvalue) x identity by this
# fraction (Ledoit-Wolf-style): a few thousand listings' photos estimate a 1280-d covariance poorly. The config's
# default, which cites the measurement.
DEFAULT_SHRINKAGE = EmbedConfig.whitening_shrinkage
# Eigenvalues are floored at this fraction of the largest before the square root: axes with no variance in the
# training photos (numerical noise) would otherwise be blown up into the retrieval space.
EIGEN_FLOOR = 1e-6
# Photos the whitening is fitted on at most (a seeded sample of the training listings' photos): 100k x 1280
# float32 is 0.5 GB; the covariance of more changes nothing that matters.
MAX_FIT_PHOTOS = 100_000
# Photos per block of the listings whitening's within-listing covariance: 8,192 x 1,280 float64 is 84 MB, where the
# whole sample in float64 (and its centred copy) took 2.3 GB more at the peak (measured: 100k x 1,280 photos).
FIT_BLOCK_ROWS = 8192


@dataclass(frozen=True)
class Whitening:
    mean_: np.ndarray  # (D,)
    components_: np.ndarray  # (k, D): principal axes divided by the square root of their variance
    explained_variance_: np.ndarray  # (k,): variance along each axis (pca), between / within ratio (listings)
    n_fit_: int  # photos it was fitted on
    method_: str = "pca"

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
                     n_fit=np.int64(self.n_fit_), method=np.array(self.method_))

    @classmethod
    def load(cls, path: str | Path) -> Whitening:
        with np.load(path) as data:
            method = str(data["method"]) if "method" in data.files else "pca"  # runs made before the choice
            return cls(data["mean"].astype(np.float32), data["components"].astype(np.float32),
                       data["explained_variance"].astype(np.float32), int(data["n_fit"]), method)


def _scatter(x: np.ndarray, centre: Callable[[slice], np.ndarray]) -> np.ndarray:
    """Sum over the rows of ``x`` (n, D) of (row - its centre)(row - its centre)', in float64, a block of
    ``FIT_BLOCK_ROWS`` at a time; ``centre(rows)``: the centres of a block's rows, (D,) or (block, D)."""
    scatter = np.zeros((x.shape[1], x.shape[1]))
    for start in range(0, len(x), FIT_BLOCK_ROWS):
        rows = slice(start, start + FIT_BLOCK_ROWS)
        block = x[rows].astype(np.float64) - centre(rows)
        scatter += block.T @ block
    return scatter


def fit_whitening(x: np.ndarray, dim: int = DEFAULT_DIM) -> Whitening:
    """PCA whitening fitted on photo embeddings ``x`` (n, D): keeps min(dim, D, n - 1) axes."""
    x = np.asarray(x)
    n, d = x.shape
    if n < 3:
        raise ValueError(f"whitening needs at least 3 photos to fit, got {n}")
    k = max(1, min(dim, d, n - 1))
    mean = x.mean(axis=0, dtype=np.float64)
    covariance = _scatter(x, lambda rows: mean) / (n - 1)  # (D, D)
    values, vectors = np.linalg.eigh(covariance)  # ascending
    order = np.argsort(values)[::-1][:k]
    values, vectors = values[order], vectors[:, order]
    values = np.maximum(values, EIGEN_FLOOR * max(values[0], 1e-12))
    return _whitening(mean, (vectors / np.sqrt(values)).T, values, n, "pca")


def fit_listing_whitening(x: np.ndarray, groups: np.ndarray, dim: int = WHITENING_METHODS["listings"],
                          shrinkage: float = DEFAULT_SHRINKAGE) -> Whitening:
    """The listings whitening (see the module's docstring) fitted on photo embeddings ``x`` (n, D) of the
    listings ``groups`` (n,): keeps min(dim, D, listings - 1) axes. Needs listings with two photos or more."""
    import scipy.linalg  # scikit-learn's own dependency; only this fit needs it

    x, groups = np.asarray(x), np.asarray(groups)
    if len(groups) != len(x):
        raise ValueError(f"{len(x)} photos but {len(groups)} listing ids")
    if not 0 <= shrinkage <= 1:
        raise ValueError(f"shrinkage must be in [0, 1], got {shrinkage}")
    if not can_learn_from_listings(groups):
        raise ValueError(f"the listings whitening needs 3 listings or more, some with several photos; got "
                         f"{len(x)} photos of {len(np.unique(groups))} listings")
    _, group = np.unique(groups, return_inverse=True)
    n, d, n_groups = len(x), x.shape[1], int(group.max()) + 1
    k = max(1, min(dim, d, n_groups - 1))
    mean = x.mean(axis=0, dtype=np.float64)
    means = group_mean(x, group, n_groups)  # (L, D) float64
    within_cov = _scatter(x, lambda rows: means[group[rows]]) / (n - n_groups)  # (D, D): how a listing's photos differ
    target = np.trace(within_cov) / d
    within_cov = (1 - shrinkage) * within_cov + shrinkage * target * np.eye(d)
    between_cov = np.cov(means, rowvar=False)  # (D, D): how listings differ
    # between v = ratio * within v, with v' within v = 1: along v one listing's photos vary by unit variance
    ratios, vectors = scipy.linalg.eigh(between_cov, within_cov)  # ascending
    order = np.argsort(ratios)[::-1][:k]
    return _whitening(mean, vectors[:, order].T, ratios[order], n, "listings")


def can_learn_from_listings(groups: np.ndarray) -> bool:
    """Whether photos of the listings ``groups`` (n,) can fit the listings whitening: 3 listings or more, and
    at least 2 more photos than listings (otherwise no listing's photos vary)."""
    n_groups = len(np.unique(groups))
    return n_groups >= 3 and len(groups) - n_groups >= 2


def fit_method(x: np.ndarray, groups: np.ndarray, method: str = "listings", dim: int | None = None,
               shrinkage: float = DEFAULT_SHRINKAGE) -> Whitening:
    """The retrieval whitening ``method`` (``WHITENING_METHODS``) fitted on photo embeddings ``x`` (n, D) of the
    listings ``groups`` (n,); ``dim`` None: the method's default. A catalogue whose listings have one photo each
    has nothing to learn the listings whitening from: PCA then, with a warning."""
    if method not in WHITENING_METHODS:
        raise ValueError(f"unknown whitening {method!r}; choose from {tuple(WHITENING_METHODS)}")
    if method == "listings":
        if can_learn_from_listings(groups):
            return fit_listing_whitening(x, groups, dim or WHITENING_METHODS["listings"], shrinkage)
        logger.warning(f"the listings whitening needs 3 listings or more, some with several photos; got {len(x)} "
                       f"photos of {len(np.unique(groups))} listings: the retrieval space is PCA-whitened instead")
        method = "pca"
    return fit_whitening(x, dim or WHITENING_METHODS[method])


def fit_retrieval_whitening(photos: np.ndarray, is_train_photo: np.ndarray, listing_of_photo: np.ndarray, seed: int,
                            config: EmbedConfig) -> Whitening:
    """The retrieval space's whitening (``config.whitening``), fitted on a seeded sample of the training listings'
    raw photo embeddings: ``photos`` (P, D), anything that takes a sorted row array (an array, a memory map,
    ``NpyRows`` over a file), each photo's listing ``listing_of_photo`` (P,); on every photo when the training
    listings have fewer than 3. What embed ships, and what any measurement of the product's space must fit."""
    rows = np.flatnonzero(is_train_photo)
    if len(rows) < 3:
        rows = np.arange(len(is_train_photo))
    listing_of_photo = np.asarray(listing_of_photo)
    rows = fit_sample(rows, seed, groups=listing_of_photo if config.whitening == "listings" else None)
    return fit_method(np.asarray(photos[rows], dtype=np.float32), listing_of_photo[rows], config.whitening,
                      config.whitening_dim, config.whitening_shrinkage)


def _whitening(mean: np.ndarray, components: np.ndarray, values: np.ndarray, n: int, method: str) -> Whitening:
    """Float32 ``Whitening`` with each axis's sign fixed (eigh's is arbitrary), so a refit on the same photos
    gives the same vectors."""
    k = len(components)
    signs = np.sign(components[np.arange(k), np.abs(components).argmax(axis=1)])
    components = components * np.where(signs == 0, 1, signs)[:, None]
    return Whitening(mean.astype(np.float32), components.astype(np.float32), values.astype(np.float32), n, method)


def fit_sample(photo_rows: np.ndarray, seed: int, limit: int = MAX_FIT_PHOTOS,
               groups: np.ndarray | None = None) -> np.ndarray:
    """At most ``limit`` of ``photo_rows``, a seeded sample, sorted (reads from a file in order). ``groups``
    (indexed by photo row, e.g. each photo's listing): whole groups are sampled, never part of one, as the
    listings whitening needs each sampled listing's photos together."""
    rows = np.asarray(photo_rows, dtype=np.int64)
    if len(rows) <= limit:
        return rows
    rng = np.random.default_rng(seed)
    if groups is None:
        return np.sort(rng.choice(rows, limit, replace=False))
    ids, of_row, sizes = np.unique(np.asarray(groups)[rows], return_inverse=True, return_counts=True)
    order = rng.permutation(len(ids))
    kept = np.zeros(len(ids), dtype=bool)
    kept[order[np.cumsum(sizes[order]) <= limit]] = True
    return np.sort(rows[kept[of_row]])
