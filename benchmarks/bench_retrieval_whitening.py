"""Gallery completion in transformed retrieval spaces: raw, whitened, and query / database expansion on top.

The evaluation's gallery completion (recall@10: a random half of a gallery must find its other half among
every listing) on the run's photo embeddings as built (raw), after transforms fitted on the training
listings' photos alone (centring, per-dimension standardisation, PCA whitening to 128 and 256 dimensions;
Jegou & Chum 2012), in the run's own retrieval space (its ``retrieval_whitening.npz``, what the product
ships), and with two re-rankings on top of that space (Radenovic et al. 2018):

  alpha-QE  the query is replaced by the normalised sum of itself and its top-n neighbours, each weighted by
            its similarity to the power alpha
  DBA       every database vector is replaced the same way by its own top-n neighbours (itself included)

The same for the pretrained backbone's features (ImageNet transfer), so a gain can be told apart from a
property of the backbone. Every transform is affine, so it commutes with the gallery mean.

``--choose``: how the product's whitening was chosen, on the training listings alone: they are dealt into 5 folds,
each whitening is fitted on four folds' photos and scored by gallery completion of the fifth fold's listings among
themselves: raw, PCA (256, 512) and the listings whitening (``search/whitening.py``) over a grid of dimensions and
shrinkages.

    python benchmarks/bench_retrieval_whitening.py --run artifacts/demo
    python benchmarks/bench_retrieval_whitening.py --run artifacts/demo --choose
    python benchmarks/bench_retrieval_whitening.py --run RUN --quick     # smoke run: fewer transforms
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA

from gallery_core.artifacts.run import open_run
from gallery_core.evaluation.context import Context
from gallery_core.evaluation.metrics import (
    completion_ranks,
    gallery_completion_ranks,
    hit_rate_at_k,
    split_galleries,
)
from gallery_core.search.whitening import fit_listing_whitening, fit_whitening
from gallery_core.vectors import group_mean, l2_normalise, top_k

REPO = Path(__file__).resolve().parent.parent
QE_N, QE_ALPHA = 5, 3.0  # Radenovic et al.'s usual settings (alpha 3, a handful of neighbours), fixed a priori


def transforms(fit: np.ndarray, seed: int, quick: bool) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    mean, std = fit.mean(axis=0), fit.std(axis=0) + 1e-6
    out = {"raw": lambda x: x, "centred": lambda x: x - mean, "standardised": lambda x: (x - mean) / std}
    for k in () if quick else (128, 256):
        if k < min(fit.shape):
            pca = PCA(n_components=k, whiten=True, random_state=seed).fit(fit)
            out[f"pca-whitened {k}"] = pca.transform
    return out


def completion_among(x: np.ndarray, listing_index: np.ndarray, listings: np.ndarray, seed: int) -> float:
    """Gallery completion recall@10 of ``listings`` among themselves (their photos' rows of ``x`` only)."""
    rows = np.isin(listing_index, listings)
    local = np.searchsorted(listings, listing_index[rows])  # listings sorted: -> 0 .. len(listings) - 1
    in_query = split_galleries(local, len(listings), seed=seed)
    eligible = np.flatnonzero(np.bincount(local, minlength=len(listings)) >= 2)
    return hit_rate_at_k(gallery_completion_ranks(x[rows], local, len(listings), in_query, eligible), 10)


def choose(x: np.ndarray, listing_index: np.ndarray, train_listings: np.ndarray, seed: int, quick: bool) -> None:
    """Print each whitening's completion recall@10 over 5 folds of the training listings (fit on 4, score the 5th)."""
    rng = np.random.default_rng(seed)
    folds = np.array_split(rng.permutation(train_listings), 2 if quick else 5)
    grid = [(64, 0.3), (128, 0.3)] if quick else [(d, s) for d in (64, 128, 256, 512) for s in (0.03, 0.1, 0.3, 0.5, 1.0)]
    scores: dict[str, list[float]] = {}
    for held in folds:
        held = np.sort(held)
        fit_rows = np.isin(listing_index, np.setdiff1d(train_listings, held))
        fit_x, fit_groups = x[fit_rows], listing_index[fit_rows]
        spaces = {"raw": x, **{f"pca {d}": fit_whitening(fit_x, d).transform(x) for d in (256, 512)}}
        for name, space in spaces.items():
            scores.setdefault(name, []).append(completion_among(space, listing_index, held, seed))
        for d, s in grid:
            space = fit_listing_whitening(fit_x, fit_groups, d, s).transform(x)
            scores.setdefault(f"listings {d}, shrinkage {s}", []).append(completion_among(space, listing_index, held,
                                                                                          seed))
    print(f"gallery completion recall@10 over {len(folds)} folds of {len(train_listings)} training listings "
          "(fitted on the others; each fold's listings among themselves)")
    for name, values in scores.items():
        print(f"{name:<32}{np.mean(values):>8.3f}   " + " ".join(f"{v:.3f}" for v in values))


def expand(vectors: np.ndarray, database: np.ndarray, n: int, alpha: float, exclude: np.ndarray | None = None,
           ) -> np.ndarray:
    """Each row replaced by the normalised sum of itself and its top-``n`` database neighbours weighted by
    similarity**alpha (negative similarities count zero). ``exclude``: per row, a database row not to use."""
    out = np.empty_like(vectors)
    for start in range(0, len(vectors), 1024):
        v = vectors[start:start + 1024]
        sims = v @ database.T  # (chunk, L)
        if exclude is not None:
            sims[np.arange(len(v)), exclude[start:start + 1024]] = -np.inf
        rows = np.stack([top_k(s, n) for s in sims])  # (chunk, n)
        weights = np.maximum(np.take_along_axis(sims, rows, axis=1), 0) ** alpha  # (chunk, n)
        out[start:start + 1024] = v + np.einsum("qn,qnd->qd", weights, database[rows])
    return l2_normalise(out)


def completion_variants(photos: np.ndarray, listing_index: np.ndarray, n: int, in_query: np.ndarray,
                        ) -> dict[str, np.ndarray]:
    """Ranks of gallery completion (as ``gallery_completion_ranks``) plain, with alpha-QE and with DBA."""
    has_query = np.bincount(listing_index[in_query], minlength=n) > 0
    has_rest = np.bincount(listing_index[~in_query], minlength=n) > 0
    own = np.flatnonzero(has_query & has_rest)
    whole = l2_normalise(group_mean(photos, listing_index, n))
    query = l2_normalise(group_mean(photos[in_query], listing_index[in_query], n)[own])
    rest = l2_normalise(group_mean(photos[~in_query], listing_index[~in_query], n)[own])
    out = {"plain": completion_ranks(query, rest, whole, own),
           # the query's own whole gallery contains it: never a neighbour to expand with
           "alpha-QE": completion_ranks(expand(query, whole, QE_N, QE_ALPHA, exclude=own), rest, whole, own)}
    dba_whole = expand(whole, whole, QE_N, QE_ALPHA)  # itself among its neighbours, as DBA does
    dba_rest = expand(rest, whole, QE_N, QE_ALPHA, exclude=own)
    out["DBA"] = completion_ranks(query, dba_rest, dba_whole, own)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=REPO / "artifacts" / "demo")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fit-every", type=int, default=4, help="fit on every n-th training photo (default 4)")
    parser.add_argument("--quick", action="store_true", help="smoke run: no PCA transforms, and --choose's on a small grid")
    parser.add_argument("--choose", action="store_true", help="the whitening's choice on 5 folds of the training "
                                                              "listings, then stop")
    args = parser.parse_args()
    run = open_run(args.run)
    if args.choose or args.quick:  # the smoke run goes through both parts
        train = np.flatnonzero((run.listings["split"] == "train").to_numpy())
        choose(np.array(run.photo_embeddings, dtype=np.float32), np.array(run.photos["listing_index"], np.int64),
               train, args.seed, args.quick)
        if args.choose:
            return
    ctx = Context(run=run, work_dir=REPO / ".tmp" / "bench-whitening", report_dir=REPO / ".tmp", progress=False)
    listing_index = np.array(run.photos["listing_index"], dtype=np.int64)
    n = len(run.listings)
    in_query = split_galleries(listing_index, n, seed=args.seed)  # the evaluation's halves
    is_train_photo = (run.listings["split"] == "train").to_numpy()[listing_index]
    raw = np.array(run.photo_embeddings, dtype=np.float32)
    spaces = {"product": raw, "imagenet": np.asarray(ctx.imagenet.photos, dtype=np.float32)}
    print(f"run {run.name}: {n} listings, {len(listing_index)} photos; gallery completion recall@10 "
          f"(chance {10 / n:.3f}); transforms fitted on every {args.fit_every}th training photo")
    print(f"{'transform':<34}" + "".join(f"{name:>12}" for name in spaces) + f"{'seconds':>10}")
    rows: dict[str, list[float]] = {}
    for x in spaces.values():
        for label, transform in transforms(x[is_train_photo][::args.fit_every], args.seed, args.quick).items():
            started = time.perf_counter()
            ranks = completion_variants(transform(x), listing_index, n, in_query)["plain"]
            rows.setdefault(label, []).extend([hit_rate_at_k(ranks, 10), time.perf_counter() - started])
    for label, values in rows.items():
        print(f"{label:<34}" + "".join(f"{r:>12.3f}" for r in values[0::2]) + f"{sum(values[1::2]):>10.1f}")
    if run.whitening is not None:  # the product's own retrieval space, and re-ranking on top of it
        started = time.perf_counter()
        variants = completion_variants(run.retrieval_vectors(raw), listing_index, n, in_query)
        seconds = time.perf_counter() - started
        for name, ranks in variants.items():
            label = f"run's whitening ({run.whitening.dim}-d)" + ("" if name == "plain" else f" + {name}")
            print(f"{label:<34}{hit_rate_at_k(ranks, 10):>12.3f}{'-':>12}{seconds:>10.1f}")
        print(f"(alpha-QE and DBA: n = {QE_N} neighbours, alpha = {QE_ALPHA})")


if __name__ == "__main__":
    main()
