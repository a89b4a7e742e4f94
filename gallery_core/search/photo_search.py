"""Single-photo visual search: one query photo -> the most similar catalogue photos and listings.

The search is **exact**: one (P, D) x (D,) product over every photo embedding of the run. At demo
scale (24k photos x 256 dims) that is ~6 M multiply-adds, a few milliseconds on one core, so no
index is needed; ``docs/ann_benchmark.md`` measures where an ANN index starts to pay (well past
100k vectors), and the listing search of ``Run.retrieve`` keeps using Annoy.

A listing's score is its best-matching photo's cosine similarity: a reseller's photo usually shows
one view of a product (or a room), so the listing that owns a near-identical photo should come first,
whatever its other photos show. (A gallery-mean score is what ``Run.retrieve`` gives for seed sets.)

``similar_photos`` / ``similar_listings`` are what the app's Retrieve page calls; the CLI's
``search-photo`` prints the same tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gallery_core.artifacts.run import Run
from gallery_core.errors import UsageError
from gallery_core.vectors import l2_normalise, top_k

SEARCH_METHOD = "exact (cosine over all photo embeddings)"


def photo_similarities(run: Run, query_embedding: np.ndarray) -> np.ndarray:
    """Cosine similarity, in the run's retrieval space (whitened), of one raw query embedding (D,) to every
    photo of the run -> (P,), rows = run.photos."""
    photos = np.asarray(run.photo_embeddings, dtype=np.float32)  # (P, D), raw encoder outputs
    query = np.asarray(query_embedding, dtype=np.float32)
    if query.shape[0] != photos.shape[1]:
        raise ValueError(f"query has {query.shape[0]} dims, the run's photo embeddings {photos.shape[1]}")
    return l2_normalise(run.retrieval_vectors(photos)) @ l2_normalise(run.retrieval_vectors(query))


def similar_photos(run: Run, query_embedding: np.ndarray, k: int = 10,
                   exclude_photos: np.ndarray | list[int] = ()) -> pd.DataFrame:
    """Top-k catalogue photos for a query embedding (e.g. ``run.embed_uploads([photo])[0]``).

    Returns photo_index, listing_id, path, score (cosine similarity), rank; ``exclude_photos``
    (photo_index values) are left out, e.g. the query itself when it is a catalogue photo.
    """
    if k < 1:
        raise UsageError(f"k must be >= 1, got {k}")
    scores = photo_similarities(run, query_embedding)
    if len(exclude_photos):
        scores[np.asarray(exclude_photos, dtype=np.int64)] = -np.inf
    rows = top_k(scores, k)
    rows = rows[np.isfinite(scores[rows])]
    table = run.photos.iloc[rows][["photo_index", "listing_id", "path"]].reset_index(drop=True)
    table["score"] = scores[rows].astype(float)
    table["rank"] = np.arange(1, len(rows) + 1)
    return table


def similar_listings(run: Run, query_embedding: np.ndarray, k: int = 10,
                     exclude_listings: list[str] | tuple[str, ...] = ()) -> pd.DataFrame:
    """Top-k listings by their best-matching photo: listing_id, score, best_photo (photo_index), rank."""
    if k < 1:
        raise UsageError(f"k must be >= 1, got {k}")
    scores = photo_similarities(run, query_embedding)
    listing_index = run.photos["listing_index"].to_numpy()
    n_listings = len(run.listings)
    best = np.full(n_listings, -np.inf, dtype=np.float32)
    np.maximum.at(best, listing_index, scores)  # (L,) best photo score of each listing
    for listing_id in exclude_listings:
        if listing_id in run.row_of_listing:
            best[run.row_of_listing[listing_id]] = -np.inf
    rows = top_k(best, k)
    rows = rows[np.isfinite(best[rows])]
    # The photo that gave each listing its score: the first of its photos reaching the maximum.
    best_photo = []
    for row in rows:
        first, n = int(run.listings["first_photo"].iloc[row]), int(run.listings["n_photos"].iloc[row])
        best_photo.append(first + int(np.argmax(scores[first:first + n])))
    return pd.DataFrame({"listing_id": run.listings["listing_id"].to_numpy()[rows],
                         "score": best[rows].astype(float), "best_photo": np.asarray(best_photo, dtype=np.int64),
                         "rank": np.arange(1, len(rows) + 1)})


@dataclass
class PhotoSearchResult:
    photos: pd.DataFrame  # similar_photos
    listings: pd.DataFrame  # similar_listings
    method: str = SEARCH_METHOD


def search_photo(run: Run, photo: str | Path | bytes, k: int = 10) -> PhotoSearchResult:
    """Embed one photo (a file or its bytes) with the run's encoder and search. Raises PhotoError."""
    query = run.embed_uploads([photo])[0]
    return PhotoSearchResult(similar_photos(run, query, k), similar_listings(run, query, k))
