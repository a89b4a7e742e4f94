"""Retrieval (report section 5): gallery completion, attribute agreement of neighbours, and the Annoy
index against exact search (recall and query latency).

Each measure is also taken on the ImageNet-transfer features where it applies, so the report can say
whether MTL training made retrieval better than the backbone's features alone.
"""

from __future__ import annotations

import time
from pathlib import Path
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
from gallery_core.evaluation.report import (
    COLOURS,
    bullets,
    finite_or_nan,
    fmt,
    is_finite,
    save_figure,
    subplots,
    table,
)
from gallery_core.evaluation.sections.base import Section
from gallery_core.search.index import exact_search, query_index
from gallery_core.search.whitening import fit_retrieval_whitening
from gallery_core.vectors import l2_normalise

FIGURE = "retrieval.png"

COMPLETION_KS = (1, 10)
ANN_K = 10


def evaluate_retrieval(ctx: Context, config: EvaluationConfig) -> dict[str, Any]:
    run = ctx.run
    listings = run.listings
    n = len(listings)
    if n < 2:
        return {"skipped": "retrieval needs at least 2 listings"}
    rng = np.random.default_rng(config.seed)
    listing_index = np.array(run.photos["listing_index"], dtype=np.int64)
    # Both spaces whitened as retrieval uses them (search/whitening.py), each fitted on its own training photos:
    # the run's from its artifact, ImageNet's here the same way; the raw run embedding is kept for completion.
    is_train_photo = (listings["split"] == "train").to_numpy()[listing_index]
    imagenet_white = fit_retrieval_whitening(ctx.imagenet.photos, is_train_photo, listing_index, config.seed,
                                             run.config.embed)
    imagenet_photos = imagenet_white.transform(ctx.imagenet.photos)
    spaces = {"mtl": (run.retrieval_vectors(run.photo_embeddings), np.array(run.listing_embeddings)),
              "imagenet": (imagenet_photos, l2_normalise(imagenet_white.transform(ctx.imagenet.listings)))}
    completion_spaces = {**spaces, "mtl_raw": (np.array(run.photo_embeddings), None)}
    bar = tqdm(total=3, desc="retrieval", unit="measure", disable=not ctx.progress)

    # 1. Gallery completion: the same random halves for both feature spaces.
    in_query = split_galleries(listing_index, n, seed=config.seed)
    sizes = np.bincount(listing_index, minlength=n)
    # Queried: the listings no whitening was fitted on (the validation split), as the retrieval space is learned
    # from the training listings' own galleries (search/whitening.py) and would be scored on what it memorised;
    # every listing stays a candidate. A run without validation listings queries them all.
    held_out = (listings["split"] != "train").to_numpy()
    eligible = np.flatnonzero((sizes >= 2) & held_out) if held_out.any() else np.flatnonzero(sizes >= 2)
    if config.completion_queries and config.completion_queries < len(eligible):
        eligible = np.sort(rng.choice(eligible, size=config.completion_queries, replace=False))
    completion: dict[str, Any] = {"n_queries": len(eligible), "n_candidates": n,
                                  "queries": "validation listings" if held_out.any() else "every listing",
                                  "chance": {f"top{k}": min(1.0, k / n) for k in COMPLETION_KS}}
    if len(eligible):
        for name, (photos, _) in completion_spaces.items():
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


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def retrieval_verdicts(r: dict[str, Any]) -> list[str]:
    out = []
    c = r["gallery_completion"]
    if "mtl" in c:
        out.append(f"Gallery completion: half a gallery finds its other half first in {_pct(c['mtl']['top1'])} of "
                   f"{c['n_queries']} queries ({c.get('queries', 'every listing')}, among all {c['n_candidates']}) "
                   f"and in the top 10 in {_pct(c['mtl']['top10'])} with MTL embeddings, "
                   f"vs {_pct(c['imagenet']['top1'])} / {_pct(c['imagenet']['top10'])} with ImageNet features "
                   f"(chance {_pct(c['chance']['top1'])} / {_pct(c['chance']['top10'])}).")
    attributes = r["attribute_agreement"]["attributes"]
    if attributes:
        wins = [a for a, v in attributes.items() if is_finite(v["precision_mtl"]) and is_finite(v["precision_imagenet"])
                and v["precision_mtl"] > v["precision_imagenet"]]
        out.append(f"Attribute agreement@{r['attribute_agreement']['k']}: MTL neighbours agree more often than "
                   f"ImageNet neighbours on {len(wins)} of {len(attributes)} attributes.")
    a = r["ann"]
    out.append(f"Annoy recall@{a['k']} against exact search: {a['recall']:.3f} over {a['n_queries']} queries; median "
               f"query {a['annoy_ms_median']:.2f} ms (exact {a['exact_ms_median']:.2f} ms over {a['n_items']} items).")
    return out


def retrieval_markdown(r: dict[str, Any], verdicts: list[str]) -> list[list[str]]:
    c = r["gallery_completion"]
    lines = [f"**Gallery completion.** Each listing with at least 2 photos is queried with a random half of its photos "
             f"(the mean of their embeddings); it is found when its other half ranks within the top k of "
             f"{c['n_candidates']} candidates (every other listing's whole gallery, and its own other half).", ""]
    if "mtl" in c:
        lines += table(["features", "top 1", "top 10", "median rank", "MRR"],
                       [[name, fmt(c[key]["top1"]), fmt(c[key]["top10"]), fmt(c[key]["median_rank"], 1),
                         fmt(c[key]["mrr"])] for key, name in (("mtl", "MTL embeddings (whitened)"),
                                                              ("mtl_raw", "MTL embeddings (raw)"),
                                                              ("imagenet", "ImageNet features (whitened)"))
                if key in c]
                       + [["chance", fmt(c["chance"]["top1"]), fmt(c["chance"]["top10"]), "–", "–"]])
    agreement = r["attribute_agreement"]
    lines += [f"**Attribute agreement.** Precision@{agreement['k']}: the share of a listing's {agreement['k']} nearest "
              "neighbours (exact cosine, itself excluded) with the same recorded value; chance = the same share for "
              "random listings.", ""]
    lines += table(["attribute", "MTL", "ImageNet", "chance", "queries"],
                   [[f"`{a}`" + (" (hold-out)" if v["holdout"] else ""), fmt(v["precision_mtl"]),
                     fmt(v["precision_imagenet"]), fmt(v["chance"]), str(v["n_queries"])]
                    for a, v in agreement["attributes"].items()])
    lines += [f"![Gallery completion and attribute agreement]({FIGURE})", ""]
    a = r["ann"]
    lines += [f"**Approximate index.** Annoy ({a['n_trees']} trees, search_k {a['search_k']}) against exact search over "
              f"{a['n_items']} listing embeddings, {a['n_queries']} queries: recall@{a['k']} {fmt(a['recall'])}; query "
              f"latency median {fmt(a['annoy_ms_median'], 2)} ms (p95 {fmt(a['annoy_ms_p95'], 2)} ms), exact search "
              f"median {fmt(a['exact_ms_median'], 2)} ms (p95 {fmt(a['exact_ms_p95'], 2)} ms).", ""]
    return [lines + bullets(verdicts)]


def retrieval_figure(r: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    attributes = r["attribute_agreement"]["attributes"]
    completion = r["gallery_completion"]
    fig, (left, right) = subplots(1, 2, figsize=(10, 4.2), gridspec_kw={"width_ratios": [1, 2]})
    if "mtl" in completion:
        ks = ["top1", "top10"]
        x = np.arange(len(ks))
        for i, name in enumerate(("mtl", "imagenet")):
            left.bar(x + (i - 0.5) * 0.35, [100 * completion[name][k] for k in ks], 0.35,
                     label="MTL" if name == "mtl" else "ImageNet", color=COLOURS[name])
        left.scatter(x, [100 * completion["chance"][k] for k in ks], marker="_", s=400, color="black",
                     label="chance", zorder=3)
        left.set_xticks(x, ["top 1", "top 10"])
        left.set_ylabel("% of queries")
        left.set_title("Gallery completion")
        left.legend(fontsize=8)
    names = list(attributes)
    x = np.arange(len(names))
    for i, (key, label, colour) in enumerate((("precision_mtl", "MTL", COLOURS["mtl"]),
                                              ("precision_imagenet", "ImageNet", COLOURS["imagenet"]),
                                              ("chance", "chance", COLOURS["chance"]))):
        right.bar(x + (i - 1) * 0.27, [finite_or_nan(attributes[a][key]) for a in names], 0.27, label=label,
                  color=colour)
    right.set_xticks(x, [f"{a}{' (hold-out)' if attributes[a]['holdout'] else ''}" for a in names],
                     rotation=30, ha="right")
    right.set_ylabel(f"precision@{r['attribute_agreement']['k']}")
    right.set_title("Neighbours sharing the listing's attribute")
    right.legend(fontsize=8)
    for ax in (left, right):
        ax.grid(alpha=0.3, axis="y")
    return {"retrieval": save_figure(fig, out_dir / FIGURE)}


SECTION = Section(name="retrieval", titles=("Retrieval",), run=evaluate_retrieval, verdicts=retrieval_verdicts,
                  markdown=retrieval_markdown, figures=retrieval_figure, figure_files=(FIGURE,))
