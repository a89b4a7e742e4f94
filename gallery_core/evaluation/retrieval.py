"""Retrieval quality of the embeddings: gallery completion, attribute agreement of neighbours, and the
Annoy index against exact search (recall and query latency).

Each measure is also taken on the ImageNet-transfer features where it applies, so the report can say
whether MTL training made retrieval better than the backbone's features alone.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from gallery_core.data.tasks import class_labels
from gallery_core.evaluation.config import EvaluationConfig
from gallery_core.evaluation.context import Context
from gallery_core.evaluation.metrics import (
    attribute_precision_at_k,
    gallery_completion_ranks,
    hit_rate_at_k,
    neighbours,
    recall_at_k,
    split_galleries,
)
from gallery_core.search.index import exact_search, query_index
from gallery_core.vectors import l2_normalise

COMPLETION_KS = (1, 10)
ANN_K = 10


def evaluate_retrieval(ctx: Context, config: EvaluationConfig) -> dict[str, Any]:
    run = ctx.run
    listings = run.listings
    n = len(listings)
    if n < 2:
        return {"skipped": "retrieval needs at least 2 listings"}
    rng = np.random.default_rng(config.seed)
    spaces = {"mtl": (np.array(run.photo_embeddings), np.array(run.listing_embeddings)),
              "imagenet": (ctx.imagenet.photos, l2_normalise(ctx.imagenet.listings))}
    listing_index = np.array(run.photos["listing_index"], dtype=np.int64)
    bar = tqdm(total=3, desc="retrieval", unit="measure", disable=not ctx.progress)

    # 1. Gallery completion: the same random halves for both feature spaces.
    in_query = split_galleries(listing_index, n, seed=config.seed)
    sizes = np.bincount(listing_index, minlength=n)
    eligible = np.flatnonzero(sizes >= 2)
    if config.completion_queries and config.completion_queries < len(eligible):
        eligible = np.sort(rng.choice(eligible, size=config.completion_queries, replace=False))
    completion: dict[str, Any] = {"n_queries": len(eligible), "n_candidates": n,
                                  "chance": {f"top{k}": min(1.0, k / n) for k in COMPLETION_KS}}
    if len(eligible):
        for name, (photos, _) in spaces.items():
            ranks = gallery_completion_ranks(photos, listing_index, n, in_query, eligible)
            completion[name] = {**{f"top{k}": hit_rate_at_k(ranks, k) for k in COMPLETION_KS},
                                "median_rank": float(np.median(ranks)), "mrr": float((1.0 / ranks).mean())}
    bar.update()

    # 2. Attribute agreement: do a listing's nearest neighbours share its recorded attributes?
    k = min(config.precision_k, n - 1)
    columns = [t.column for t in run.tasks if t.kind == "multiclass"] + list(run.holdout)
    agreement: dict[str, Any] = {"k": k, "attributes": {}}
    neighbour_rows = {name: neighbours(vectors, k) for name, (_, vectors) in spaces.items()}
    for column in columns:
        if column not in listings.columns:
            continue
        values = class_labels(listings[column]).to_numpy(dtype=object)
        entry = {name: attribute_precision_at_k(values, rows) for name, rows in neighbour_rows.items()}
        agreement["attributes"][column] = {"precision_mtl": entry["mtl"]["precision"],
                                           "precision_imagenet": entry["imagenet"]["precision"],
                                           "chance": entry["mtl"]["chance"], "n_queries": entry["mtl"]["n_queries"],
                                           "holdout": column in run.holdout}
    bar.update()

    # 3. Annoy against exact search on the run's listing embeddings.
    embeddings = spaces["mtl"][1]
    queries = rng.choice(n, size=min(config.ann_queries, n), replace=False)
    k_ann = min(ANN_K, n)
    approximate, exact, ann_ms, exact_ms = [], [], [], []
    index, search_k = run.index, run.config.index.search_k
    for q in queries:
        started = time.perf_counter()
        rows, _ = query_index(index, embeddings[q], k_ann, search_k)
        ann_ms.append(1000 * (time.perf_counter() - started))
        started = time.perf_counter()
        top, _ = exact_search(embeddings, embeddings[q][None, :], k_ann)
        exact_ms.append(1000 * (time.perf_counter() - started))
        approximate.append(rows)
        exact.append(top[0])
    ann = {"k": k_ann, "n_queries": len(queries), "n_items": n, "n_trees": run.config.index.n_trees,
           "search_k": search_k, "recall": recall_at_k(approximate, exact),
           "annoy_ms_median": float(np.median(ann_ms)), "annoy_ms_p95": float(np.percentile(ann_ms, 95)),
           "exact_ms_median": float(np.median(exact_ms)), "exact_ms_p95": float(np.percentile(exact_ms, 95))}
    bar.update()
    bar.close()
    return {"gallery_completion": completion, "attribute_agreement": agreement, "ann": ann}
