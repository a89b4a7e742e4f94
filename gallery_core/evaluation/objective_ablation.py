"""The visual-search objectives' ablation (the reseller paper): its arms, how one trained arm is scored,
and how arms are compared.

Four models that differ only in their objectives: attributes only; + triplet ranking; + VAE; all
three. Training them is a job of its own (``benchmarks/ablation_visual_search.py``: it trains the arms
and writes ``visual_search_ablation.json`` into the run's evaluation folder); the scoring here is the
evaluation's: the hold-out probe, gallery completion, attribute precision@k and the robustness
measures of ``robustness.robustness_metrics``. The report section that reads the results back is
``sections/ablation.py``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch

from gallery_core.config import BuildConfig
from gallery_core.data.catalogue import Catalogue
from gallery_core.data.tasks import encode_labels
from gallery_core.evaluation.config import ProbeConfig
from gallery_core.evaluation.metrics import (
    accuracy,
    attribute_precision_at_k,
    gallery_completion_ranks,
    hit_rate_at_k,
    majority_baseline,
    neighbours,
    paired_bootstrap_difference,
    wilson_interval,
)
from gallery_core.evaluation.models import fit_probe
from gallery_core.evaluation.robustness import query_photo_rows, robustness_metrics
from gallery_core.evaluation.tasks import holdout_task
from gallery_core.models.encoder import GalleryModel
from gallery_core.vectors import group_mean, l2_normalise

ABLATION_FILE = "visual_search_ablation.json"  # in the run's evaluation folder, where the section reads it
# Each arm's TrainConfig overrides; the first arm is the one the others are compared against.
ARMS: dict[str, dict[str, float]] = {
    "attributes": {},
    "attributes+triplet": {"triplet_weight": 10.0},
    "attributes+vae": {"vae_weight": 30.0},
    "attributes+triplet+vae": {"triplet_weight": 10.0, "vae_weight": 30.0},
}


def arm_config(base: BuildConfig, extra: dict[str, float]) -> BuildConfig:
    """The base config with one arm's objective weights."""
    return replace(base, train=replace(base.train, **extra)).validate()


def ablation_queries(listing_index: np.ndarray, in_query: np.ndarray, is_val: np.ndarray, n_queries: int,
                     seed: int) -> tuple[np.ndarray, int]:
    """Listings queried with corrupted photos: every validation listing with a query half (never trained
    on; the hold-out test set) up to ``n_queries``, then a seeded sample of training listings up to
    ``n_queries`` in all. Returns (sorted listing rows, how many are validation listings)."""
    n = len(is_val)
    has_half = np.bincount(listing_index[in_query], minlength=n) > 0
    val_queries = np.flatnonzero(has_half & is_val)[:n_queries]
    others = np.flatnonzero(has_half & ~is_val)
    extra = np.random.default_rng(seed).choice(others, size=max(0, min(n_queries - len(val_queries), len(others))),
                                               replace=False)
    return np.sort(np.concatenate([val_queries, extra])), len(val_queries)


def holdout_majority_accuracy(listings: Any, column: str, is_val: np.ndarray) -> float:
    """Accuracy of the training listings' majority class of ``column`` on the validation listings."""
    labels = encode_labels(holdout_task(listings, column), listings[column])
    return majority_baseline(labels[(labels >= 0) & ~is_val], labels[(labels >= 0) & is_val])[1]


@torch.no_grad()
def photo_embeddings_of(model: GalleryModel, features: np.ndarray) -> np.ndarray:
    """Photo embeddings (P, D) of an arm's model from trunk features (P, ...)."""
    out = []
    for start in range(0, len(features), 4096):
        x = torch.from_numpy(np.asarray(features[start:start + 4096], dtype=np.float32))
        out.append(model.encoder.embed_photos(x, from_trunk=True).numpy())
    return np.concatenate(out)


def evaluate_arm(model: GalleryModel, checkpoint: dict[str, Any], catalogue: Catalogue, clean_features: np.ndarray,
                 corrupted: dict[str, np.ndarray], listing_index: np.ndarray, in_query: np.ndarray,
                 queries: np.ndarray, attributes: list[str], holdout_column: str, k: int, seed: int,
                 ) -> dict[str, Any]:
    """One trained arm's scores: hold-out accuracy (all validation listings, then their query halves
    clean and corrupted), clean retrieval over every listing, and clean against corrupted queries.
    Per-item results (``correct``, ``ranks``) are kept for the paired comparisons."""
    listings = catalogue.listings
    n = len(listings)
    photos = photo_embeddings_of(model, clean_features)  # (P, D)
    gallery = group_mean(photos, listing_index, n)  # the heads' input (L, D)

    # Hold-out column: a probe on the training listings' embeddings, accuracy on the validation listings.
    is_val = listings["listing_id"].isin(set(checkpoint["val_listing_ids"])).to_numpy()
    task = holdout_task(listings, holdout_column)
    labels = encode_labels(task, listings[holdout_column])
    train_rows = np.flatnonzero((labels >= 0) & ~is_val)
    test_rows = np.flatnonzero((labels >= 0) & is_val)
    # The evaluation's probe: the same 2-layer head as the model's own task heads.
    probe_config = ProbeConfig(hidden=checkpoint["config"]["model"]["head_hidden"])
    probe = fit_probe(task, gallery[train_rows], labels[train_rows], probe_config, seed=seed)
    predicted = probe.predict_proba(gallery[test_rows]).argmax(axis=1)
    correct = predicted == labels[test_rows]
    low, high = wilson_interval(int(correct.sum()), len(correct))
    holdout = {"column": holdout_column, "accuracy": accuracy(predicted, labels[test_rows]), "ci_low": low,
               "ci_high": high, "n_test": int(len(test_rows)), "n_train": int(len(train_rows)),
               "correct": correct.astype(int).tolist()}  # per test listing, for paired comparisons

    # The same probe on the validation queries' *query halves*, clean and corrupted (same photos each time).
    rows = query_photo_rows(listing_index, in_query, queries)
    corrupted_embeddings = {kind: photo_embeddings_of(model, feats) for kind, feats in corrupted.items()}
    test_queries = np.array([q for q in queries if q in set(test_rows.tolist())], dtype=np.int64)
    position = {int(q): i for i, q in enumerate(queries)}
    owner = np.array([position[int(r)] for r in listing_index[rows]])
    holdout["query_half"] = {"n_test": int(len(test_queries))}
    for name, vectors in {"clean": photos[rows], **corrupted_embeddings}.items():
        half = group_mean(vectors, owner, len(queries))
        chosen = half[[position[int(q)] for q in test_queries]]
        holdout["query_half"][name] = (accuracy(probe.predict_proba(chosen).argmax(axis=1), labels[test_queries])
                                       if len(test_queries) else float("nan"))  # no labelled validation query

    # Clean retrieval over every listing (the evaluation's protocol and functions).
    ranks = gallery_completion_ranks(photos, listing_index, n, in_query)
    near = neighbours(l2_normalise(gallery), k)
    precision = {col: attribute_precision_at_k(listings[col].to_numpy(dtype=object), near) for col in attributes}
    clean_all = {"n_queries": int(len(ranks)), "recall_at_1": hit_rate_at_k(ranks, 1),
                 f"recall_at_{k}": hit_rate_at_k(ranks, k),
                 f"attribute_precision_at_{k}": {c: v["precision"] for c, v in precision.items()},
                 f"attribute_chance_at_{k}": {c: v["chance"] for c, v in precision.items()},
                 f"mean_attribute_precision_at_{k}": float(np.mean([v["precision"] for v in precision.values()])),
                 "ranks": ranks.tolist()}  # per listing, for paired comparisons

    # Clean vs corrupted query photos on the query listings.
    values = {col: listings[col].to_numpy(dtype=object) for col in attributes}
    robust = robustness_metrics(photos, listing_index, n, in_query, queries, corrupted_embeddings, values,
                                ks=(1, k), precision_k=k)
    if robust["n_query_photos"] != len(rows):
        raise ValueError(f"{robust['n_query_photos']} query photos scored, {len(rows)} expected")
    return {"holdout": holdout, "clean_all_listings": clean_all, "robustness": robust}


def paired_differences(arms: dict[str, Any], k: int) -> dict[str, dict[str, dict[str, float]]]:
    """Each arm against the first (attributes only) on the same test items: hold-out accuracy and
    gallery-completion hit@k over all listings, with 95% paired bootstrap intervals."""
    names = list(arms)
    base = arms[names[0]]
    out = {}
    for name in names[1:]:
        arm = arms[name]
        out[name] = {
            "holdout_accuracy": paired_bootstrap_difference(np.array(arm["holdout"]["correct"]),
                                                            np.array(base["holdout"]["correct"])),
            f"completion_recall_at_{k}": paired_bootstrap_difference(
                np.array(arm["clean_all_listings"]["ranks"]) <= k,
                np.array(base["clean_all_listings"]["ranks"]) <= k)}
    return out
