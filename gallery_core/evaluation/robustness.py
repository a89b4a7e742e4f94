"""Robustness of retrieval to compressed, cropped, scribbled and watermarked query photos.

The visual-search paper's users search with photos that went through messaging apps (JPEG), were
cropped or drawn on. This module measures what that costs, with the corruptions of
``gallery_core.data.corruptions`` applied to the *query* photos only (the catalogue stays clean):

* gallery completion (the evaluation's protocol): each queried listing's gallery is split in two
  halves (``split_galleries``); the query is the mean of its query half, and the target is its other
  half among every other listing's whole gallery. Recall@k = how often the target ranks in the top k.
  Clean and corrupted runs use the same split, so their difference is the corruption alone (the
  ranking is ``metrics.completion_ranks``, the one the evaluation's retrieval section uses);
* attribute precision@k of the same queries' neighbours (the evaluation's ``attribute_precision_at_k``);
* single-photo search: each corrupted query photo searched among all clean photos: is its own clean
  original the top hit (near-duplicate recall@1), and is its listing among the top-k listings?

Every corruption is deterministic: photo ``row`` under corruption ``kind`` draws from
``corruption_rng(seed, kind, row)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gallery_core.data.corruptions import CORRUPTION_KINDS
from gallery_core.data.photos import to_model_input
from gallery_core.data.tasks import class_labels
from gallery_core.evaluation.metrics import (
    attribute_precision_at_k,
    completion_ranks,
    hit_rate_at_k,
    split_galleries,
)
from gallery_core.models.encoder import GalleryEncoder
from gallery_core.training.augment import load_corrupted_photo
from gallery_core.vectors import group_mean, l2_normalise, top_k


def corruption_rng(seed: int, kind: str, row: int) -> np.random.Generator:
    """The generator of photo ``row``'s corruption ``kind`` (independent of which other photos are used)."""
    if kind not in CORRUPTION_KINDS:
        raise ValueError(f"unknown corruption {kind!r}; choose from {CORRUPTION_KINDS}")
    return np.random.default_rng([int(seed), CORRUPTION_KINDS.index(kind), int(row)])


def corrupted_pixels(paths: Sequence[str | Path], rows: Sequence[int], image_size: int, kind: str,
                     seed: int = 0) -> np.ndarray:
    """Photos ``paths`` (catalogue rows ``rows``) corrupted by ``kind`` -> uint8 (n, S, S, 3)."""
    return np.stack([load_corrupted_photo(p, image_size, corruption_rng(seed, kind, r), kind=kind)
                     for p, r in zip(paths, rows, strict=True)])


@torch.no_grad()
def embed_corrupted(encoder: GalleryEncoder, paths: Sequence[str | Path], rows: Sequence[int], image_size: int,
                    kind: str, seed: int = 0, batch_size: int = 64) -> np.ndarray:
    """Photo embeddings (n, D) of the corrupted photos, through the whole encoder (no trunk cache)."""
    encoder.eval()
    device = next(encoder.parameters()).device
    chunks = []
    for start in range(0, len(paths), batch_size):
        pixels = corrupted_pixels(paths[start:start + batch_size], rows[start:start + batch_size], image_size,
                                  kind, seed)
        chunks.append(encoder.embed_photos(to_model_input(pixels).to(device)).float().cpu().numpy())
    return np.concatenate(chunks) if chunks else np.zeros((0, encoder.embed_dim), np.float32)


def query_photo_rows(listing_index: np.ndarray, in_query: np.ndarray, query_listings: np.ndarray) -> np.ndarray:
    """Rows of the query-half photos of ``query_listings``, in photo order: the photos to corrupt."""
    wanted = np.zeros(int(listing_index.max()) + 1, dtype=bool)
    wanted[np.asarray(query_listings)] = True
    return np.flatnonzero(np.asarray(in_query) & wanted[np.asarray(listing_index)])


def _top_k_excluding(query: np.ndarray, whole: np.ndarray, own: np.ndarray, k: int) -> np.ndarray:
    sims = query @ whole.T  # (Q, L)
    sims[np.arange(len(own)), own] = -np.inf
    return top_k(sims, k)


def _photo_search(corrupted: np.ndarray, rows: np.ndarray, clean_unit: np.ndarray, listing_index: np.ndarray,
                  n_listings: int, k: int) -> dict[str, float]:
    """Each corrupted photo searched among all clean photos: its original's rank 1, its listing in top k
    (listings ranked by their best photo, as ``visual_search.similar_listings`` does)."""
    corrupted_unit = l2_normalise(corrupted)
    order = np.argsort(listing_index, kind="stable")  # photos grouped by listing for reduceat
    sizes = np.bincount(listing_index, minlength=n_listings)
    has_photos = sizes > 0
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])[has_photos]
    top1, listing_hits = [], []
    for start in range(0, len(rows), 512):
        sims = corrupted_unit[start:start + 512] @ clean_unit.T  # (chunk, P)
        own_rows = rows[start:start + 512]
        own_score = sims[np.arange(len(own_rows)), own_rows]
        top1.append((sims > own_score[:, None]).sum(axis=1) == 0)
        best = np.full((len(own_rows), n_listings), -np.inf, dtype=np.float32)
        best[:, has_photos] = np.maximum.reduceat(sims[:, order], starts, axis=1)  # (chunk, L) best photo
        own_best = best[np.arange(len(own_rows)), listing_index[own_rows]]
        listing_hits.append(1 + (best > own_best[:, None]).sum(axis=1) <= k)
    return {"photo_recall_at_1": float(np.concatenate(top1).mean()),
            f"listing_hit_at_{k}": float(np.concatenate(listing_hits).mean()), "n_photos": int(len(rows))}


def robustness_metrics(photo_embeddings: np.ndarray, listing_index: np.ndarray, n_listings: int,
                       in_query: np.ndarray, query_listings: np.ndarray, corrupted: dict[str, np.ndarray],
                       attribute_values: dict[str, np.ndarray] | None = None, ks: Sequence[int] = (1, 10),
                       precision_k: int = 10) -> dict[str, Any]:
    """Clean and corrupted retrieval metrics for the same queries.

    ``photo_embeddings`` (P, D) clean; ``in_query`` (P,) from ``split_galleries``; ``corrupted[kind]``
    (R, D): embeddings of the photos ``query_photo_rows(...)`` under that corruption, in that order.
    ``attribute_values``: listing columns (L,) for attribute precision@k. Returns one entry per
    condition ("clean", then each corruption).
    """
    photo_embeddings = np.asarray(photo_embeddings, dtype=np.float32)
    listing_index = np.asarray(listing_index)
    query_listings = np.asarray(query_listings, dtype=np.int64)
    rows = query_photo_rows(listing_index, in_query, query_listings)
    position = np.full(n_listings, -1, dtype=np.int64)
    position[query_listings] = np.arange(len(query_listings))
    whole = l2_normalise(group_mean(photo_embeddings, listing_index, n_listings))
    rest_rows = np.flatnonzero(~np.asarray(in_query) & (position[listing_index] >= 0))
    rest = l2_normalise(group_mean(photo_embeddings[rest_rows], position[listing_index[rest_rows]],
                                    len(query_listings)))
    clean_unit = l2_normalise(photo_embeddings)
    conditions = {"clean": photo_embeddings[rows], **corrupted}
    out: dict[str, Any] = {"n_queries": int(len(query_listings)), "n_query_photos": int(len(rows)), "conditions": {}}
    for name, vectors in conditions.items():
        if len(vectors) != len(rows):
            raise ValueError(f"{name}: {len(vectors)} embeddings for {len(rows)} query photos")
        query = l2_normalise(group_mean(np.asarray(vectors, np.float32), position[listing_index[rows]],
                                         len(query_listings)))
        ranks = completion_ranks(query, rest, whole, query_listings)
        entry: dict[str, Any] = {f"recall_at_{k}": hit_rate_at_k(ranks, k) for k in ks}
        entry["mean_reciprocal_rank"] = float((1.0 / ranks).mean())
        if attribute_values:
            neighbours = _top_k_excluding(query, whole, query_listings, precision_k)
            precisions = {col: attribute_precision_at_k(values, neighbours, query_listings)["precision"]
                          for col, values in attribute_values.items()}
            entry[f"attribute_precision_at_{precision_k}"] = precisions
            entry[f"mean_attribute_precision_at_{precision_k}"] = float(np.nanmean(list(precisions.values())))
        if name != "clean":
            entry["photo_search"] = _photo_search(np.asarray(vectors, np.float32), rows, clean_unit, listing_index,
                                                  n_listings, max(ks))
        out["conditions"][name] = entry
    return out


def evaluate_run_robustness(run: Any, kinds: Sequence[str] = CORRUPTION_KINDS, n_queries: int = 200,
                            seed: int = 0, attributes: Sequence[str] | None = None, split: str | None = "val",
                            ks: Sequence[int] = (1, 10), precision_k: int = 10) -> dict[str, Any]:
    """``robustness_metrics`` for a built run (``gallery_core.artifacts.run.Run``), its own encoder embedding the
    corrupted query photos. Queries: up to ``n_queries`` listings of ``split`` (None = all) with >= 2
    photos, a seeded sample. ``attributes``: default the multiclass tasks and the hold-out columns."""
    listing_index = run.photos["listing_index"].to_numpy()
    n_listings = len(run.listings)
    in_query = split_galleries(listing_index, n_listings, seed=seed)
    eligible = np.bincount(listing_index[in_query], minlength=n_listings) > 0
    if split is not None:
        eligible &= (run.listings["split"] == split).to_numpy()
    candidates = np.flatnonzero(eligible)
    rng = np.random.default_rng(seed)
    queries = np.sort(rng.choice(candidates, size=min(n_queries, len(candidates)), replace=False))
    rows = query_photo_rows(listing_index, in_query, queries)
    paths = run.photos["path"].to_numpy()[rows]
    encoder = run.model.encoder
    corrupted = {kind: run.retrieval_vectors(embed_corrupted(encoder, paths, rows, run.config.model.image_size,
                                                             kind, seed)) for kind in kinds}
    if attributes is None:
        attributes = [t.column for t in run.tasks if t.kind == "multiclass"] + list(run.holdout)
    values = {col: class_labels(run.listings[col]).to_numpy(dtype=object) for col in attributes
              if col in run.listings.columns}  # as the evaluation compares values: 3.0 and "3" agree
    result = robustness_metrics(run.retrieval_vectors(run.photo_embeddings), listing_index, n_listings, in_query, queries,
                                corrupted, values, ks, precision_k)
    result.update({"seed": seed, "split": split, "kinds": list(kinds)})
    return result
